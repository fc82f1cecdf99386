/* checkcal.c: the calendar of the workday checks (pure). */
#ifndef CHECKCAL_H
#define CHECKCAL_H

/* What a clinic-local day is for the check of a fridge. */
enum checkcal_state {
	CHECKCAL_CHECKED,	/* checked, whatever the day */
	CHECKCAL_MISSED,	/* a workday, no check, its check_by passed */
	CHECKCAL_DUE,		/* today, a workday, check_by not passed */
	CHECKCAL_HOLIDAY,	/* a holiday of the clinic */
	CHECKCAL_OFF,		/* not one of the clinic's workdays */
	CHECKCAL_NONE,		/* after today, or before the fridge was there */
	CHECKCAL_STATES
};

/* A local date, and where it stands against the clinic's local today. */
struct checkcal_day {
	int	year, month, day;
	int	checked;	/* has a daily_check row */
	int	holiday;	/* has a holiday row */
	int	cmp_today;	/* < 0 before today, 0 today, > 0 after */
	int	late;		/* today only: check_by has passed */
	int	before_fridge;	/* before the fridge was created */
};

/* ISO day of the week, 1 Monday to 7 Sunday; 0 if not a date. */
int		 checkcal_weekday(int, int, int);
/*
 * The workdays of a PostgreSQL integer array ("{1,2,3,4,5}") as a mask,
 * bit n for ISO day n; -1 if it is not one.
 */
int		 checkcal_workdays(const char *);
/* The state of a day for a clinic's workdays mask. */
enum checkcal_state checkcal_state(int, const struct checkcal_day *);
const char	*checkcal_state_name(enum checkcal_state);

#endif
