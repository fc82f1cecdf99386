/*
 * The [source] settings the fuzzer picks from (by a byte of its input), and
 * that test_payload --write-corpus uses to write the seeds in that form.
 */
#ifndef FUZZ_PRESETS_H
#define FUZZ_PRESETS_H

static const struct {
	const char	*filter, *temperature, *timestamp;
	const char	*door, *door_open_value, *power;
} presets[8] = {
	{ NULL, NULL, NULL },
	{ "zigbee2mqtt/+", "/temperature", "/ts" },
	{ "site1/zigbee2mqtt/+", "/data/0/temp", "/data/0/time" },
	{ "zigbee2mqtt/#", "temp_c", NULL },
	{ NULL, "", NULL },
	{ NULL, "/sensors/0/t", NULL },
	{ "#", "/temperature", "" },
	{ NULL, NULL, "/ts", "/door", "open", "/power" },
};

#endif
