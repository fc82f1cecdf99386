/* calibration.c: warnings before the probes' certificates lapse. */
#ifndef CALIBRATION_H
#define CALIBRATION_H

struct conf;
struct vialwatchd;
struct calibration;

struct calibration *calibration_new(struct vialwatchd *);
void		    calibration_start(struct calibration *);
void		    calibration_reconfigure(struct calibration *,
		        const struct conf *);
void		    calibration_free(struct calibration *);

#endif
