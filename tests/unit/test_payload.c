/*
 * payload.c: one table of cases per format, built from the formats' own
 * documented messages, then a table of bad input covering every reason.
 * "test_payload --write-corpus DIR" writes the cases as fuzzer seeds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "tap.h"
#include "topic.h"

#define NOW	1700000100000000LL	/* arrival: 2023-11-14T22:15:00Z */
#define SEC	1000000LL

struct want {
	enum reading_kind	 kind;
	const char		*key;
	double			 temp_c;
	int64_t			 ts_us;
	double			 humidity;
	double			 battery;
	double			 value;		/* door_open, power_w */
	int			 power_on;	/* -1: value is power_w */
};

struct tcase {
	const char		*name;
	const struct source	*src;
	const char		*topic;
	const char		*payload;
	size_t			 len;		/* 0: use strlen */
	int			 rc;
	enum payload_reason	 reason;
	const char		*detail;	/* exact, or NULL: any */
	struct want		 r[3];
};

struct table {
	const char		*name;
	const struct tcase	*cases;
	size_t			 n;
};

/* Returns n readings; none; refused for r; refused with detail d. */
#define READINGS(n)	n, REASON_NONE, NULL
#define IGNORED		0, REASON_NONE, NULL, { { 0 } }
#define BAD(r)		-1, r, NULL, { { 0 } }
#define BADMSG(r, d)	-1, r, d, { { 0 } }
#define T(k, c, ts, h, b)	{ READING_TEMP, k, c, ts, h, b, 0, -1 }
#define TC(k, c, ts)	T(k, c, ts, NAN, NAN)
#define KIND(kind, k)	{ kind, k, NAN, NOW, NAN, NAN, 0, -1 }
#define DOOR(k, o, ts, b)	{ READING_DOOR, k, NAN, ts, NAN, b, o, -1 }
#define WATTS(k, w, ts)	{ READING_POWER, k, NAN, ts, NAN, NAN, w, -1 }
#define ONOFF(k, o, ts)	{ READING_POWER, k, NAN, ts, NAN, NAN, NAN, o }

static struct source src_z2m = {
	.name = "z2m", .filter = "zigbee2mqtt/+",
	.format = FORMAT_ZIGBEE2MQTT, .unit = 'C'
};
static struct source src_z2m_f = {
	.name = "z2m-f", .format = FORMAT_ZIGBEE2MQTT, .unit = 'F'
};
static struct source src_z2m_site = {
	.name = "z2m-site", .filter = "site1/zigbee2mqtt/+",
	.format = FORMAT_ZIGBEE2MQTT, .unit = 'C'
};
static struct source src_tasmota = {
	.name = "tasmota", .format = FORMAT_TASMOTA, .unit = 'C'
};
static struct source src_tasmota_f = {
	.name = "tasmota-f", .format = FORMAT_TASMOTA, .unit = 'F'
};
static struct source src_shelly = {
	.name = "shelly", .format = FORMAT_SHELLY, .unit = 'C'
};
static struct source src_shelly_f = {
	.name = "shelly-f", .format = FORMAT_SHELLY, .unit = 'F'
};
static struct source src_gen2 = {
	.name = "gen2", .format = FORMAT_SHELLY_GEN2, .unit = 'C'
};
static struct source src_gen2_f = {
	.name = "gen2-f", .format = FORMAT_SHELLY_GEN2, .unit = 'F'
};
static struct source src_esphome = {
	.name = "esphome", .format = FORMAT_ESPHOME, .unit = 'C'
};
static struct source src_ha = {
	.name = "ha", .format = FORMAT_HOMEASSISTANT, .unit = 'C'
};
static struct source src_number = {
	.name = "number", .format = FORMAT_NUMBER, .unit = 'C'
};
static struct source src_number_f = {
	.name = "number-f", .format = FORMAT_NUMBER, .unit = 'F'
};
static struct source src_ttn = {
	.name = "ttn", .format = FORMAT_TTN, .unit = 'C'
};
static struct source src_ttn_field = {
	.name = "ttn-field", .format = FORMAT_TTN, .unit = 'C',
	.temperature = "temp_c"
};
static struct source src_ttn_ptr = {
	.name = "ttn-ptr", .format = FORMAT_TTN, .unit = 'C',
	.temperature = "/sensors/0/t"
};
static struct source src_json = {
	.name = "json", .format = FORMAT_JSON, .unit = 'C'
};
static struct source src_json_ts = {
	.name = "json-ts", .format = FORMAT_JSON, .unit = 'C',
	.temperature = "/temperature", .timestamp = "/ts"
};
static struct source src_json_deep = {
	.name = "json-deep", .format = FORMAT_JSON, .unit = 'C',
	.temperature = "/data/0/temp", .timestamp = "/data/0/time"
};
static struct source src_json_root = {
	.name = "json-root", .format = FORMAT_JSON, .unit = 'C',
	.temperature = ""
};
static struct source src_json_door = {
	.name = "json-door", .format = FORMAT_JSON, .unit = 'C',
	.timestamp = "/ts", .door = "/door", .door_open_value = "open",
	.power = "/power"
};
static struct source src_json_contact = {
	.name = "json-contact", .format = FORMAT_JSON, .unit = 'C',
	.door = "/contact"
};
static struct source src_unknown = {
	.name = "unknown", .format = (enum payload_format)99, .unit = 'C'
};

/* Built by setup(): payloads too big or too odd to write out. */
static char big_ok[PAYLOAD_MAX_BYTES];		/* valid, at the limit */
static char big[PAYLOAD_MAX_BYTES + 1];		/* one byte over */
static char deep[10000];			/* [[[[ ... 10,000 deep */
static char noise[512];			/* random, fixed seed */
static char probes[2048];			/* 17 tasmota sensors */
static char key255[256];			/* topic = key of 255 bytes */
static char key256[257];			/* one byte too long */

static const char ttn_uplink[] =
    "{\"end_device_ids\":{\"device_id\":\"eui-70b3d57ed0000001\","
    "\"application_ids\":{\"application_id\":\"fridges\"},"
    "\"dev_eui\":\"70B3D57ED0000001\",\"join_eui\":\"0000000000000000\","
    "\"dev_addr\":\"260B1234\"},"
    "\"correlation_ids\":[\"as:up:01E0XAWJ9B1V4GQ6H2D9K1FN5B\"],"
    "\"received_at\":\"2020-02-12T15:15:49.328347Z\","
    "\"uplink_message\":{\"session_key_id\":\"AXBSH1Pk6Z5Qnm9Lw2V7hg==\","
    "\"f_port\":1,\"f_cnt\":42,\"frm_payload\":\"AZoB\","
    "\"decoded_payload\":{\"temperature\":4.1,\"humidity\":51,"
    "\"temp_c\":5.5,\"sensors\":[{\"t\":6.5}]},"
    "\"rx_metadata\":[{\"gateway_ids\":{\"gateway_id\":\"gw-clinic\"},"
    "\"time\":\"2020-02-12T15:15:49.100Z\",\"rssi\":-61,"
    "\"channel_rssi\":-61,\"snr\":9.5}],"
    "\"settings\":{\"data_rate\":{\"lora\":{\"bandwidth\":125000,"
    "\"spreading_factor\":7}},\"frequency\":\"868100000\"},"
    "\"received_at\":\"2020-02-12T15:15:49.127Z\","
    "\"consumed_airtime\":\"0.051456s\"}}";

static const char ttn_future[] =
    "{\"received_at\":\"2023-11-14T22:25:00Z\",\"uplink_message\":"
    "{\"f_port\":1,\"decoded_payload\":{\"temperature\":4.1}}}";

static const char ttn_undecoded[] =
    "{\"received_at\":\"2020-02-12T15:15:49.328347Z\",\"uplink_message\":"
    "{\"f_port\":1,\"frm_payload\":\"AZoB\"}}";

#define Z2M_DOC	\
	"{\"temperature\":4.31,\"humidity\":44.7,\"battery\":86," \
	"\"linkquality\":97}"

static const struct tcase z2m_cases[] = {
	{ "documented state", &src_z2m, "zigbee2mqtt/fridge1", Z2M_DOC, 0,
	    READINGS(1), { T("zigbee2mqtt/fridge1", 4.31, NOW, 44.7, 86) } },
	{ "freezer, no humidity or battery", &src_z2m, "zigbee2mqtt/freezer",
	    "{\"temperature\":-19.5,\"linkquality\":120}", 0, READINGS(1),
	    { TC("zigbee2mqtt/freezer", -19.5, NOW) } },
	{ "fahrenheit source", &src_z2m_f, "zigbee2mqtt/fridge1",
	    "{\"temperature\":39.2}", 0, READINGS(1),
	    { TC("zigbee2mqtt/fridge1", 4.0, NOW) } },
	{ "temperature as a string", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":\"4.5\"}", 0, READINGS(1),
	    { TC("zigbee2mqtt/fridge1", 4.5, NOW) } },
	{ "last_seen ISO 8601", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":5,\"last_seen\":\"2023-11-14T22:14:00.000Z\"}",
	    0, READINGS(1),
	    { TC("zigbee2mqtt/fridge1", 5, 1700000040 * SEC) } },
	{ "last_seen epoch ms", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":5,\"last_seen\":1700000040000}", 0, READINGS(1),
	    { TC("zigbee2mqtt/fridge1", 5, 1700000040 * SEC) } },
	{ "friendly name with a slash", &src_z2m, "zigbee2mqtt/clinic/fridge1",
	    Z2M_DOC, 0, READINGS(1),
	    { T("zigbee2mqtt/clinic/fridge1", 4.31, NOW, 44.7, 86) } },
	{ "unicode name", &src_z2m, "zigbee2mqtt/kühlschrank", Z2M_DOC, 0,
	    READINGS(1),
	    { T("zigbee2mqtt/kühlschrank", 4.31, NOW, 44.7, 86) } },
	{ "battery out of 0..100 dropped", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":4,\"battery\":255,\"humidity\":null}", 0,
	    READINGS(1), { TC("zigbee2mqtt/fridge1", 4, NOW) } },
	{ "availability JSON offline", &src_z2m,
	    "zigbee2mqtt/fridge1/availability", "{\"state\":\"offline\"}", 0,
	    READINGS(1), { KIND(READING_OFFLINE, "zigbee2mqtt/fridge1") } },
	{ "availability JSON online", &src_z2m,
	    "zigbee2mqtt/fridge1/availability", "{\"state\":\"online\"}", 0,
	    READINGS(1), { KIND(READING_ONLINE, "zigbee2mqtt/fridge1") } },
	{ "availability plain offline", &src_z2m,
	    "zigbee2mqtt/fridge1/availability", "offline", 0, READINGS(1),
	    { KIND(READING_OFFLINE, "zigbee2mqtt/fridge1") } },
	{ "availability plain online", &src_z2m,
	    "zigbee2mqtt/fridge1/availability", "online\n", 0, READINGS(1),
	    { KIND(READING_ONLINE, "zigbee2mqtt/fridge1") } },
	{ "availability unknown state", &src_z2m,
	    "zigbee2mqtt/fridge1/availability", "{\"state\":\"asleep\"}", 0,
	    IGNORED },
	{ "availability not JSON", &src_z2m,
	    "zigbee2mqtt/fridge1/availability", "maybe", 0,
	    BAD(REASON_NOT_JSON) },
	{ "bridge state", &src_z2m, "zigbee2mqtt/bridge/state",
	    "{\"state\":\"online\"}", 0, IGNORED },
	{ "bridge devices", &src_z2m, "zigbee2mqtt/bridge/devices",
	    "[{\"ieee_address\":\"0x00158d0001\"}]", 0, IGNORED },
	{ "bridge log, not JSON", &src_z2m, "zigbee2mqtt/bridge/logging",
	    "oops", 0, IGNORED },
	{ "set subtopic", &src_z2m, "zigbee2mqtt/fridge1/set",
	    "{\"state\":\"ON\"}", 0, IGNORED },
	{ "get subtopic", &src_z2m, "zigbee2mqtt/fridge1/get",
	    "{\"temperature\":\"\"}", 0, IGNORED },
	{ "base from the filter", &src_z2m_site, "site1/zigbee2mqtt/fridge1",
	    Z2M_DOC, 0, READINGS(1),
	    { T("site1/zigbee2mqtt/fridge1", 4.31, NOW, 44.7, 86) } },
	{ "bridge under a longer base", &src_z2m_site,
	    "site1/zigbee2mqtt/bridge/state", "online", 0, IGNORED },
	{ "neither temperature nor contact", &src_z2m, "zigbee2mqtt/door",
	    "{\"battery\":100,\"linkquality\":40}", 0,
	    BADMSG(REASON_NO_TEMPERATURE, "payload has no \"temperature\"") },
	{ "temperature null", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":null}", 0, BAD(REASON_NO_TEMPERATURE) },
	{ "temperature not a number", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":\"warm\"}", 0,
	    BADMSG(REASON_NOT_NUMBER, "\"temperature\" is not a number") },
	{ "temperature an object", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":{\"v\":4}}", 0, BAD(REASON_NOT_NUMBER) },
	{ "JSON but not an object", &src_z2m, "zigbee2mqtt/fridge1", "4.2", 0,
	    BADMSG(REASON_NO_TEMPERATURE, "payload is not a JSON object") },
	{ "no probe sentinel", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":327.67}", 0, BADMSG(REASON_OUT_OF_RANGE,
	    "temperature 327.67 °C is outside -100..100 °C") },
	{ "NaN", &src_z2m, "zigbee2mqtt/fridge1", "{\"temperature\":NaN}", 0,
	    BADMSG(REASON_NOT_FINITE,
	    "\"temperature\" is nan, not a finite number") },
	{ "1e999", &src_z2m, "zigbee2mqtt/fridge1", "{\"temperature\":1e999}",
	    0, BAD(REASON_NOT_FINITE) },
	{ "last_seen garbage", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":5,\"last_seen\":\"recently\"}", 0,
	    BAD(REASON_BAD_TIMESTAMP) },
	{ "base only", &src_z2m, "zigbee2mqtt", Z2M_DOC, 0,
	    BAD(REASON_BAD_TOPIC) },
	{ "base and slash", &src_z2m, "zigbee2mqtt/", Z2M_DOC, 0,
	    BAD(REASON_BAD_TOPIC) },
};

#define TASMOTA_TIME	"\"Time\":\"2021-04-26T10:01:34\""

static const struct tcase tasmota_cases[] = {
	{ "documented DS18B20", &src_tasmota, "tele/fridge1/SENSOR",
	    "{" TASMOTA_TIME ",\"DS18B20\":{\"Id\":\"020692454681\","
	    "\"Temperature\":4.1},\"TempUnit\":\"C\"}", 0, READINGS(1),
	    { TC("tele/fridge1/SENSOR/DS18B20", 4.1, NOW) } },
	{ "two probes", &src_tasmota, "tele/fridge1/SENSOR",
	    "{" TASMOTA_TIME ",\"DS18B20-1\":{\"Id\":\"020692454681\","
	    "\"Temperature\":4.1},\"DS18B20-2\":{\"Id\":\"0316A2791E1F\","
	    "\"Temperature\":-18.6},\"TempUnit\":\"C\"}", 0, READINGS(2),
	    { TC("tele/fridge1/SENSOR/DS18B20-1", 4.1, NOW),
	      TC("tele/fridge1/SENSOR/DS18B20-2", -18.6, NOW) } },
	{ "SHT3X with humidity", &src_tasmota, "tele/fridge2/SENSOR",
	    "{" TASMOTA_TIME ",\"SHT3X\":{\"Temperature\":5.2,"
	    "\"Humidity\":48.1,\"DewPoint\":-4.9},\"TempUnit\":\"C\"}", 0,
	    READINGS(1),
	    { T("tele/fridge2/SENSOR/SHT3X", 5.2, NOW, 48.1, NAN) } },
	{ "AM2301 and DS18B20", &src_tasmota, "tele/fridge2/SENSOR",
	    "{" TASMOTA_TIME ",\"AM2301\":{\"Temperature\":6.0,"
	    "\"Humidity\":55.0,\"DewPoint\":-2.4},\"DS18B20\":{\"Id\":\"01\","
	    "\"Temperature\":4.5},\"TempUnit\":\"C\"}", 0, READINGS(2),
	    { T("tele/fridge2/SENSOR/AM2301", 6.0, NOW, 55.0, NAN),
	      TC("tele/fridge2/SENSOR/DS18B20", 4.5, NOW) } },
	{ "TempUnit F", &src_tasmota, "tele/fridge1/SENSOR",
	    "{" TASMOTA_TIME ",\"DS18B20\":{\"Id\":\"020692454681\","
	    "\"Temperature\":39.2},\"TempUnit\":\"F\"}", 0, READINGS(1),
	    { TC("tele/fridge1/SENSOR/DS18B20", 4.0, NOW) } },
	{ "TempUnit C beats unit = F", &src_tasmota_f, "tele/fridge1/SENSOR",
	    "{\"DS18B20\":{\"Temperature\":4.1},\"TempUnit\":\"C\"}", 0,
	    READINGS(1), { TC("tele/fridge1/SENSOR/DS18B20", 4.1, NOW) } },
	{ "no TempUnit, unit = F", &src_tasmota_f, "tele/fridge1/SENSOR",
	    "{\"DS18B20\":{\"Temperature\":41}}", 0, READINGS(1),
	    { TC("tele/fridge1/SENSOR/DS18B20", 5.0, NOW) } },
	{ "Time with a zone", &src_tasmota, "tele/fridge1/SENSOR",
	    "{\"Time\":\"2021-04-26T10:01:34+02:00\",\"DS18B20\":"
	    "{\"Temperature\":4.1}}", 0, READINGS(1),
	    { TC("tele/fridge1/SENSOR/DS18B20", 4.1, 1619424094 * SEC) } },
	{ "one probe at the sentinel", &src_tasmota, "tele/fridge1/SENSOR",
	    "{\"DS18B20-1\":{\"Temperature\":4.1},\"DS18B20-2\":"
	    "{\"Temperature\":327.67},\"TempUnit\":\"C\"}", 0, READINGS(1),
	    { TC("tele/fridge1/SENSOR/DS18B20-1", 4.1, NOW) } },
	{ "only probe at the sentinel", &src_tasmota, "tele/fridge1/SENSOR",
	    "{\"DS18B20\":{\"Temperature\":327.67},\"TempUnit\":\"C\"}", 0,
	    BAD(REASON_OUT_OF_RANGE) },
	{ "probe with null", &src_tasmota, "tele/fridge1/SENSOR",
	    "{\"SHT3X\":{\"Temperature\":null,\"Humidity\":null}}", 0,
	    BAD(REASON_NO_TEMPERATURE) },
	{ "no sensor with a temperature", &src_tasmota, "tele/fridge1/SENSOR",
	    "{" TASMOTA_TIME ",\"ANALOG\":{\"A0\":512}}", 0,
	    BAD(REASON_NO_TEMPERATURE) },
	{ "Time garbage", &src_tasmota, "tele/fridge1/SENSOR",
	    "{\"Time\":\"soon\",\"DS18B20\":{\"Temperature\":4.1}}", 0,
	    BAD(REASON_BAD_TIMESTAMP) },
	{ "invalid UTF-8 sensor name", &src_tasmota, "tele/fridge1/SENSOR",
	    "{\"DS\xff\":{\"Temperature\":4.1}}", 0, BAD(REASON_BAD_KEY) },
	{ "STATE ignored", &src_tasmota, "tele/fridge1/STATE",
	    "{\"Time\":\"2021-04-26T10:01:34\",\"Uptime\":\"0T00:15:12\"}", 0,
	    IGNORED },
	{ "LWT ignored", &src_tasmota, "tele/fridge1/LWT", "Online", 0,
	    IGNORED },
	{ "topic without a device", &src_tasmota, "SENSOR",
	    "{\"DS18B20\":{\"Temperature\":4.1}}", 0, BAD(REASON_BAD_TOPIC) },
	{ "17 probes, 16 kept", &src_tasmota, "tele/fridge9/SENSOR", probes,
	    0, READINGS(PAYLOAD_MAX_READINGS),
	    { TC("tele/fridge9/SENSOR/DS18B20-1", 1.0, NOW),
	      TC("tele/fridge9/SENSOR/DS18B20-2", 2.0, NOW),
	      TC("tele/fridge9/SENSOR/DS18B20-3", 3.0, NOW) } },
};

static const struct tcase shelly_cases[] = {
	{ "documented temperature", &src_shelly,
	    "shellies/shellyht-AABBCC/sensor/temperature", "4.25", 0,
	    READINGS(1), { TC("shellies/shellyht-AABBCC", 4.25, NOW) } },
	{ "fahrenheit device", &src_shelly_f,
	    "shellies/shellyht-AABBCC/sensor/temperature", "39.65", 0,
	    READINGS(1), { TC("shellies/shellyht-AABBCC", 4.25, NOW) } },
	{ "negative", &src_shelly, "shellies/shellyht-F1/sensor/temperature",
	    "-20.5", 0, READINGS(1),
	    { TC("shellies/shellyht-F1", -20.5, NOW) } },
	{ "battery", &src_shelly, "shellies/shellyht-AABBCC/sensor/battery",
	    "86", 0, READINGS(1), { { READING_BATTERY,
	    "shellies/shellyht-AABBCC", NAN, NOW, NAN, 86 } } },
	{ "battery over 100", &src_shelly,
	    "shellies/shellyht-AABBCC/sensor/battery", "150", 0,
	    BAD(REASON_OUT_OF_RANGE) },
	{ "humidity ignored", &src_shelly,
	    "shellies/shellyht-AABBCC/sensor/humidity", "44", 0, IGNORED },
	{ "online ignored", &src_shelly, "shellies/shellyht-AABBCC/online",
	    "true", 0, IGNORED },
	{ "announce ignored", &src_shelly, "shellies/announce",
	    "{\"id\":\"shellyht-AABBCC\"}", 0, IGNORED },
	{ "not a number", &src_shelly,
	    "shellies/shellyht-AABBCC/sensor/temperature", "hot", 0,
	    BADMSG(REASON_NOT_NUMBER, "payload is not a number") },
	{ "topic of one level", &src_shelly, "shellies", "4.25", 0,
	    BAD(REASON_BAD_TOPIC) },
	{ "nothing before sensor/", &src_shelly, "/sensor/temperature",
	    "4.25", 0, BAD(REASON_BAD_TOPIC) },
};

#define GEN2_RPC(params) "{\"src\":\"shellyplusht-c049ef8b3a44\"," \
	"\"dst\":\"shellyplusht/events\",\"method\":\"NotifyStatus\"," \
	"\"params\":{" params "}}"

static const struct tcase gen2_cases[] = {
	{ "documented status", &src_gen2,
	    "shellyplus1-a8032ab1b2c3/status/temperature:100",
	    "{\"id\":100,\"tC\":4.2,\"tF\":39.6}", 0, READINGS(1),
	    { TC("shellyplus1-a8032ab1b2c3/temperature:100", 4.2, NOW) } },
	{ "tC even when unit = F", &src_gen2_f,
	    "shellyplusht/status/temperature:0",
	    "{\"id\":0,\"tC\":4.2,\"tF\":39.6}", 0, READINGS(1),
	    { TC("shellyplusht/temperature:0", 4.2, NOW) } },
	{ "documented NotifyStatus", &src_gen2, "shellyplusht/events/rpc",
	    "{\"method\":\"NotifyStatus\",\"params\":{\"ts\":1700000000.12,"
	    "\"temperature:0\":{\"id\":0,\"tC\":4.2}}}", 0, READINGS(1),
	    { TC("shellyplusht/temperature:0", 4.2, 1700000000120000LL) } },
	{ "NotifyStatus of two probes", &src_gen2, "shellyplus1/events/rpc",
	    GEN2_RPC("\"ts\":1700000000.5,\"temperature:100\":{\"id\":100,"
	    "\"tC\":4.2,\"tF\":39.6},\"temperature:101\":{\"id\":101,"
	    "\"tC\":-18.5,\"tF\":-1.3}"), 0, READINGS(2),
	    { TC("shellyplus1/temperature:100", 4.2, 1700000000500000LL),
	      TC("shellyplus1/temperature:101", -18.5, 1700000000500000LL) } },
	{ "NotifyFullStatus with humidity and battery", &src_gen2,
	    "shellyplusht/events/rpc",
	    "{\"method\":\"NotifyFullStatus\",\"params\":{\"ts\":1700000050,"
	    "\"devicepower:0\":{\"id\":0,\"battery\":{\"V\":5.2,"
	    "\"percent\":90},\"external\":{\"present\":false}},"
	    "\"humidity:0\":{\"id\":0,\"rh\":44.7},\"sys\":{\"uptime\":5},"
	    "\"temperature:0\":{\"id\":0,\"tC\":4.2,\"tF\":39.6}}}", 0,
	    READINGS(1), { T("shellyplusht/temperature:0", 4.2,
	    1700000050 * SEC, 44.7, 90) } },
	{ "NotifyStatus without temperature", &src_gen2,
	    "shellyplus1/events/rpc",
	    GEN2_RPC("\"ts\":1700000000.5,\"switch:0\":{\"id\":0,"
	    "\"output\":true}"), 0, IGNORED },
	{ "NotifyEvent", &src_gen2, "shellyplus1/events/rpc",
	    "{\"method\":\"NotifyEvent\",\"params\":{\"ts\":1700000000.5,"
	    "\"events\":[{\"component\":\"input:0\",\"event\":\"btn_down\"}]}}",
	    0, IGNORED },
	{ "NotifyStatus with a probe gone", &src_gen2, "shellyplus1/events/rpc",
	    GEN2_RPC("\"ts\":1700000000.5,\"temperature:100\":{\"id\":100,"
	    "\"tC\":null,\"tF\":null,\"errors\":[\"read\"]}"), 0,
	    BAD(REASON_NO_TEMPERATURE) },
	{ "NotifyStatus ts in the future", &src_gen2, "shellyplus1/events/rpc",
	    GEN2_RPC("\"ts\":1700000900,\"temperature:100\":{\"tC\":4}"), 0,
	    BAD(REASON_FUTURE) },
	{ "status tC null", &src_gen2, "shellyplus1/status/temperature:100",
	    "{\"id\":100,\"tC\":null,\"tF\":null,\"errors\":[\"read\"]}", 0,
	    BAD(REASON_NO_TEMPERATURE) },
	{ "status of a switch", &src_gen2, "shellyplus1/status/switch:0",
	    "{\"id\":0,\"output\":false}", 0, IGNORED },
	{ "online ignored", &src_gen2, "shellyplus1/online", "true", 0,
	    IGNORED },
	{ "component not numbered", &src_gen2,
	    "shellyplus1/status/temperature:abc", "{\"tC\":4.2}", 0,
	    BAD(REASON_BAD_TOPIC) },
	{ "no prefix", &src_gen2, "temperature:0", "{\"tC\":4.2}", 0,
	    BAD(REASON_BAD_TOPIC) },
};

static const struct tcase number_cases[] = {
	{ "esphome plain", &src_esphome,
	    "clinic-node/sensor/fridge_temperature/state", "4.2", 0,
	    READINGS(1), { TC("clinic-node/sensor/fridge_temperature", 4.2,
	    NOW) } },
	{ "esphome quoted", &src_esphome,
	    "clinic-node/sensor/fridge_temperature/state", "\"4.2\"", 0,
	    READINGS(1), { TC("clinic-node/sensor/fridge_temperature", 4.2,
	    NOW) } },
	{ "esphome nan", &src_esphome,
	    "clinic-node/sensor/fridge_temperature/state", "nan", 0,
	    BAD(REASON_NOT_FINITE) },
	{ "esphome status", &src_esphome, "clinic-node/status", "online", 0,
	    BAD(REASON_NOT_NUMBER) },
	{ "homeassistant quoted", &src_ha, "homeassistant/sensor/fridge/state",
	    "\"-18.25\"", 0, READINGS(1),
	    { TC("homeassistant/sensor/fridge", -18.25, NOW) } },
	{ "homeassistant unavailable", &src_ha,
	    "homeassistant/sensor/fridge/state", "\"unavailable\"", 0,
	    BAD(REASON_NOT_NUMBER) },
	{ "number, any topic", &src_number, "lab/fridge/temp", "5", 0,
	    READINGS(1), { TC("lab/fridge/temp", 5, NOW) } },
	{ "white space around", &src_number, "lab/fridge/temp", " 4.2\r\n", 0,
	    READINGS(1), { TC("lab/fridge/temp", 4.2, NOW) } },
	{ "exponent", &src_number, "lab/fridge/temp", "4.2e0", 0, READINGS(1),
	    { TC("lab/fridge/temp", 4.2, NOW) } },
	{ "fahrenheit", &src_number_f, "lab/fridge/state", "41", 0,
	    READINGS(1), { TC("lab/fridge", 5, NOW) } },
	{ "fahrenheit out of range", &src_number_f, "lab/oven", "451", 0,
	    BAD(REASON_OUT_OF_RANGE) },
	{ "hex", &src_number, "lab/fridge/temp", "0x10", 0,
	    BAD(REASON_NOT_NUMBER) },
	{ "two numbers", &src_number, "lab/fridge/temp", "4.2 4.3", 0,
	    BAD(REASON_NOT_NUMBER) },
	{ "unit suffix", &src_number, "lab/fridge/temp", "4.2C", 0,
	    BAD(REASON_NOT_NUMBER) },
	{ "only /state", &src_number, "/state", "4", 0, READINGS(1),
	    { TC("/state", 4, NOW) } },
};

static const struct tcase ttn_cases[] = {
	{ "uplink with tenant", &src_ttn,
	    "v3/fridges@ttn/devices/eui-70b3d57ed0000001/up", ttn_uplink, 0,
	    READINGS(1), { TC("v3/fridges/devices/eui-70b3d57ed0000001", 4.1,
	    1581520549328347LL) } },
	{ "uplink without tenant", &src_ttn,
	    "v3/fridges/devices/eui-70b3d57ed0000001/up", ttn_uplink, 0,
	    READINGS(1), { TC("v3/fridges/devices/eui-70b3d57ed0000001", 4.1,
	    1581520549328347LL) } },
	{ "custom field", &src_ttn_field, "v3/fridges@acme/devices/lht65/up",
	    ttn_uplink, 0, READINGS(1), { TC("v3/fridges/devices/lht65", 5.5,
	    1581520549328347LL) } },
	{ "field as a pointer", &src_ttn_ptr, "v3/fridges/devices/lht65/up",
	    ttn_uplink, 0, READINGS(1), { TC("v3/fridges/devices/lht65", 6.5,
	    1581520549328347LL) } },
	{ "no decoded payload", &src_ttn, "v3/fridges/devices/lht65/up",
	    ttn_undecoded, 0, BADMSG(REASON_NO_TEMPERATURE, "payload has no "
	    "uplink_message.decoded_payload.temperature") },
	{ "received 10 min ahead", &src_ttn, "v3/fridges/devices/lht65/up",
	    ttn_future, 0, BADMSG(REASON_FUTURE, "\"received_at\" is 600 s in "
	    "the future (more than 300 s after arrival)") },
	{ "join ignored", &src_ttn, "v3/fridges/devices/lht65/join",
	    "{\"join_accept\":{}}", 0, IGNORED },
	{ "down/queued ignored", &src_ttn,
	    "v3/fridges/devices/lht65/down/queued", "{}", 0, IGNORED },
	{ "too short", &src_ttn, "v3/fridges/devices", ttn_uplink, 0,
	    BAD(REASON_BAD_TOPIC) },
	{ "v2", &src_ttn, "v2/fridges/devices/lht65/up", ttn_uplink, 0,
	    BAD(REASON_BAD_TOPIC) },
	{ "no application", &src_ttn, "v3/@ttn/devices/lht65/up", ttn_uplink,
	    0, BAD(REASON_BAD_TOPIC) },
	{ "not devices", &src_ttn, "v3/fridges/gateways/gw1/up", ttn_uplink,
	    0, BAD(REASON_BAD_TOPIC) },
};

static const struct tcase json_cases[] = {
	{ "default pointer", &src_json, "lab/fridge", "{\"temperature\":4.2}",
	    0, READINGS(1), { TC("lab/fridge", 4.2, NOW) } },
	{ "epoch seconds", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":1700000000}", 0, READINGS(1),
	    { TC("lab/fridge", 4.2, 1700000000 * SEC) } },
	{ "epoch fractional seconds", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":1700000000.25}", 0, READINGS(1),
	    { TC("lab/fridge", 4.2, 1700000000250000LL) } },
	{ "epoch milliseconds", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":1700000000123}", 0, READINGS(1),
	    { TC("lab/fridge", 4.2, 1700000000123000LL) } },
	{ "RFC 3339", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":\"2020-02-12T15:15:49.328347Z\"}", 0,
	    READINGS(1), { TC("lab/fridge", 4.2, 1581520549328347LL) } },
	{ "deep pointers", &src_json_deep, "lab/fridge",
	    "{\"data\":[{\"temp\":-20.1,\"time\":\"2021-04-26T10:01:34+02:00\"}"
	    "]}", 0, READINGS(1), { TC("lab/fridge", -20.1,
	    1619424094 * SEC) } },
	{ "timestamp absent", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2}", 0, READINGS(1),
	    { TC("lab/fridge", 4.2, NOW) } },
	{ "whole document", &src_json_root, "lab/fridge", "4.2", 0,
	    READINGS(1), { TC("lab/fridge", 4.2, NOW) } },
	{ "pointer misses", &src_json_deep, "lab/fridge",
	    "{\"data\":[]}", 0, BADMSG(REASON_NO_TEMPERATURE,
	    "payload has no value at /data/0/temp") },
	{ "timestamp a bool", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":true}", 0, BAD(REASON_BAD_TIMESTAMP) },
};

static const struct tcase bad_cases[] = {
	{ "truncated JSON", &src_z2m, "zigbee2mqtt/fridge1",
	    "{\"temperature\":4.", 0, BADMSG(REASON_NOT_JSON,
	    "payload is not JSON: unexpected end of data at byte 17") },
	{ "truncated in a key", &src_json, "lab/fridge",
	    "{\"temperature\":4.2,\"hum", 0, BAD(REASON_NOT_JSON) },
	{ "JSON nested 10,000 deep", &src_json, "lab/fridge", deep,
	    sizeof deep, BADMSG(REASON_NOT_JSON,
	    "payload is not JSON: nesting too deep at byte 64") },
	{ "random bytes", &src_z2m, "zigbee2mqtt/fridge1", noise,
	    sizeof noise, BAD(REASON_NOT_JSON) },
	{ "random bytes as a number", &src_shelly,
	    "shellies/ht-1/sensor/temperature", noise, sizeof noise,
	    BAD(REASON_NOT_NUMBER) },
	{ "trailing garbage", &src_json, "lab/fridge",
	    "{\"temperature\":4.2} x", 0, BADMSG(REASON_NOT_JSON, "payload is "
	    "not JSON: unexpected data after the value at byte 20") },
	{ "NUL inside", &src_json, "lab/fridge",
	    "{\"temperature\":4.2}\0{}", 21, BAD(REASON_NOT_JSON) },
	{ "NUL inside a string", &src_json, "lab/fridge",
	    "{\"a\":\"x\0y\",\"temperature\":4}", 26, BADMSG(REASON_NOT_JSON,
	    "payload is not JSON: NUL byte at byte 7") },
	{ "empty", &src_z2m, "zigbee2mqtt/fridge1", "", 0,
	    BADMSG(REASON_EMPTY, "payload is empty") },
	{ "empty number", &src_shelly, "shellies/ht-1/sensor/temperature", "",
	    0, BAD(REASON_EMPTY) },
	{ "only white space", &src_json, "lab/fridge", " \r\n\t", 0,
	    BAD(REASON_EMPTY) },
	{ "1e999", &src_esphome, "node/sensor/t/state", "1e999", 0,
	    BADMSG(REASON_NOT_FINITE, "payload is inf, not a finite number") },
	{ "-1e999 in JSON", &src_json, "lab/fridge",
	    "{\"temperature\":-1e999}", 0, BAD(REASON_NOT_FINITE) },
	{ "NaN", &src_shelly, "shellies/ht-1/sensor/temperature", "NaN", 0,
	    BAD(REASON_NOT_FINITE) },
	{ "Infinity", &src_number, "lab/fridge", "-Infinity", 0,
	    BAD(REASON_NOT_FINITE) },
	{ "327.67 sentinel", &src_shelly, "shellies/ht-1/sensor/temperature",
	    "327.67", 0, BADMSG(REASON_OUT_OF_RANGE,
	    "temperature 327.67 °C is outside -100..100 °C") },
	{ "below absolute zero", &src_number, "lab/fridge", "-273.15", 0,
	    BAD(REASON_OUT_OF_RANGE) },
	{ "edge +100", &src_number, "lab/fridge", "100", 0, READINGS(1),
	    { TC("lab/fridge", 100, NOW) } },
	{ "edge -100", &src_number, "lab/fridge", "-100", 0, READINGS(1),
	    { TC("lab/fridge", -100, NOW) } },
	{ "timestamp 10 min ahead", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":1700000700}", 0, BADMSG(REASON_FUTURE,
	    "timestamp at /ts is 600 s in the future (more than 300 s after "
	    "arrival)") },
	{ "timestamp 5 min ahead", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":1700000400}", 0, READINGS(1),
	    { TC("lab/fridge", 4.2, 1700000400 * SEC) } },
	{ "timestamp unparseable", &src_json_ts, "lab/fridge",
	    "{\"temperature\":4.2,\"ts\":\"yesterday\"}", 0,
	    BAD(REASON_BAD_TIMESTAMP) },
	{ "65536 bytes", &src_json, "lab/fridge", big_ok, sizeof big_ok,
	    READINGS(1), { TC("lab/fridge", 4.2, NOW) } },
	{ "65537 bytes", &src_json, "lab/fridge", big, sizeof big,
	    BADMSG(REASON_TOO_LARGE,
	    "payload is 65537 bytes, over the limit of 65536") },
	{ "65537 bytes, ignored topic", &src_z2m, "zigbee2mqtt/bridge/devices",
	    big, sizeof big, IGNORED },
	{ "invalid UTF-8 in the topic", &src_z2m, "zigbee2mqtt/fridge\xff",
	    Z2M_DOC, 0, BADMSG(REASON_BAD_KEY,
	    "sensor key is not valid UTF-8") },
	{ "overlong UTF-8", &src_json, "lab/\xc0\xaf", "{\"temperature\":4}",
	    0, BAD(REASON_BAD_KEY) },
	{ "UTF-16 surrogate", &src_esphome, "node/\xed\xa0\x80/state", "4",
	    0, BAD(REASON_BAD_KEY) },
	{ "cut UTF-8", &src_shelly, "shellies/caf\xc3/sensor/temperature",
	    "4", 0, BAD(REASON_BAD_KEY) },
	{ "beyond U+10FFFF", &src_number, "lab/\xf4\x90\x80\x80", "4", 0,
	    BAD(REASON_BAD_KEY) },
	{ "control character", &src_z2m, "zigbee2mqtt/a\tb", Z2M_DOC, 0,
	    BADMSG(REASON_BAD_KEY, "sensor key contains a control character") },
	{ "key of 255 bytes", &src_number, key255, "4", 0, READINGS(1),
	    { TC(key255, 4, NOW) } },
	{ "key of 256 bytes", &src_number, key256, "4", 0,
	    BADMSG(REASON_BAD_KEY,
	    "sensor key is 256 bytes, longer than 255") },
	{ "topic of the wrong shape", &src_ttn, "v3/fridges/up", ttn_uplink,
	    0, BADMSG(REASON_BAD_TOPIC,
	    "topic is not v3/<application>/devices/<device>/up") },
	{ "empty topic", &src_json, "", "{\"temperature\":4}", 0,
	    BAD(REASON_BAD_TOPIC) },
	{ "unknown format", &src_unknown, "lab/fridge", "4", 0,
	    BAD(REASON_NO_SOURCE) },
	{ "JSON null", &src_z2m, "zigbee2mqtt/fridge1", "null", 0,
	    BAD(REASON_NO_TEMPERATURE) },
};

/* payload-input.c: every door and power form. */
static const struct tcase input_cases[] = {
	{ "z2m contact false: open", &src_z2m, "zigbee2mqtt/fridge1-door",
	    "{\"contact\":false,\"battery\":91,\"linkquality\":60}", 0,
	    READINGS(1), { DOOR("zigbee2mqtt/fridge1-door", 1, NOW, 91) } },
	{ "z2m contact true: shut", &src_z2m, "zigbee2mqtt/fridge1-door",
	    "{\"contact\":true,\"last_seen\":1700000040000}", 0, READINGS(1),
	    { DOOR("zigbee2mqtt/fridge1-door", 0, 1700000040 * SEC, NAN) } },
	{ "z2m contact not a boolean", &src_z2m, "zigbee2mqtt/door",
	    "{\"contact\":\"open\"}", 0, BADMSG(REASON_NOT_NUMBER,
	    "\"contact\" is not true or false") },
	{ "z2m plug power", &src_z2m, "zigbee2mqtt/fridge1-plug",
	    "{\"power\":84.2,\"state\":\"ON\",\"energy\":1.2}", 0,
	    READINGS(1), { WATTS("zigbee2mqtt/fridge1-plug", 84.2, NOW) } },
	{ "z2m plug at 0 W", &src_z2m, "zigbee2mqtt/fridge1-plug",
	    "{\"power\":0,\"state\":\"OFF\"}", 0, READINGS(1),
	    { WATTS("zigbee2mqtt/fridge1-plug", 0, NOW) } },
	{ "z2m plug power negative", &src_z2m, "zigbee2mqtt/plug",
	    "{\"power\":-3}", 0, BAD(REASON_OUT_OF_RANGE) },
	{ "z2m plug power not a number", &src_z2m, "zigbee2mqtt/plug",
	    "{\"power\":[1]}", 0, BAD(REASON_NOT_NUMBER) },
	{ "z2m thermometer with power keeps its temperature", &src_z2m,
	    "zigbee2mqtt/fridge1", "{\"temperature\":4.5,\"power\":3}", 0,
	    READINGS(1), { TC("zigbee2mqtt/fridge1", 4.5, NOW) } },
	{ "tasmota plug ENERGY.Power", &src_tasmota, "tele/plug1/SENSOR",
	    "{" TASMOTA_TIME ",\"ENERGY\":{\"Total\":3.2,\"Power\":96,"
	    "\"Voltage\":230}}", 0, READINGS(1),
	    { WATTS("tele/plug1/SENSOR/ENERGY", 96, NOW) } },
	{ "tasmota plug at 0 W", &src_tasmota, "tele/plug1/SENSOR",
	    "{\"ENERGY\":{\"Power\":0}}", 0, READINGS(1),
	    { WATTS("tele/plug1/SENSOR/ENERGY", 0, NOW) } },
	{ "tasmota two channels summed", &src_tasmota, "tele/plug2/SENSOR",
	    "{\"ENERGY\":{\"Power\":[40,12.5]}}", 0, READINGS(1),
	    { WATTS("tele/plug2/SENSOR/ENERGY", 52.5, NOW) } },
	{ "tasmota Power not a number", &src_tasmota, "tele/plug1/SENSOR",
	    "{\"ENERGY\":{\"Power\":\"lots\"}}", 0, BAD(REASON_NOT_NUMBER) },
	{ "shelly gen1 door open", &src_shelly,
	    "shellies/shellydw2-AABB/sensor/state", "open", 0, READINGS(1),
	    { DOOR("shellies/shellydw2-AABB/door", 1, NOW, NAN) } },
	{ "shelly gen1 door close", &src_shelly,
	    "shellies/shellydw2-AABB/sensor/state", "close", 0, READINGS(1),
	    { DOOR("shellies/shellydw2-AABB/door", 0, NOW, NAN) } },
	{ "shelly gen1 door state unknown", &src_shelly,
	    "shellies/shellydw2-AABB/sensor/state", "ajar", 0,
	    BADMSG(REASON_NOT_NUMBER, "payload is not \"open\" or \"close\"") },
	{ "shelly gen2 window status", &src_gen2,
	    "shellyplus-dw/status/window:0", "{\"id\":0,\"open\":true}", 0,
	    READINGS(1), { DOOR("shellyplus-dw/window:0", 1, NOW, NAN) } },
	{ "shelly gen2 switch apower", &src_gen2,
	    "shellyplugs-1/status/switch:0",
	    "{\"id\":0,\"output\":true,\"apower\":88.1,\"voltage\":229}", 0,
	    READINGS(1), { WATTS("shellyplugs-1/switch:0", 88.1, NOW) } },
	{ "shelly gen2 switch without apower", &src_gen2,
	    "shellyplugs-1/status/switch:0", "{\"id\":0,\"output\":false}", 0,
	    IGNORED },
	{ "shelly gen2 NotifyStatus switch", &src_gen2,
	    "shellyplugs-1/events/rpc", "{\"method\":\"NotifyStatus\","
	    "\"params\":{\"ts\":1700000000.5,\"switch:0\":{\"id\":0,"
	    "\"apower\":0}}}", 0, READINGS(1),
	    { WATTS("shellyplugs-1/switch:0", 0, 1700000000500000LL) } },
	{ "shelly gen2 NotifyStatus window", &src_gen2,
	    "shellyplus-dw/events/rpc", "{\"method\":\"NotifyStatus\","
	    "\"params\":{\"ts\":1700000000,\"window:0\":{\"id\":0,"
	    "\"open\":false}}}", 0, READINGS(1),
	    { DOOR("shellyplus-dw/window:0", 0, 1700000000 * SEC, NAN) } },
	{ "shelly gen2 window open not boolean", &src_gen2,
	    "shellyplus-dw/status/window:0", "{\"open\":1}", 0,
	    BAD(REASON_NOT_NUMBER) },
	{ "json door by door_open_value", &src_json_door, "lab/door",
	    "{\"door\":\"open\",\"ts\":1700000040}", 0, READINGS(1),
	    { DOOR("lab/door", 1, 1700000040 * SEC, NAN) } },
	{ "json door other value: shut", &src_json_door, "lab/door",
	    "{\"door\":\"closed\"}", 0, READINGS(1),
	    { DOOR("lab/door", 0, NOW, NAN) } },
	{ "json door as a boolean", &src_json_contact, "lab/door",
	    "{\"contact\":true}", 0, READINGS(1),
	    { DOOR("lab/door", 1, NOW, NAN) } },
	{ "json door 0", &src_json_contact, "lab/door", "{\"contact\":0}", 0,
	    READINGS(1), { DOOR("lab/door", 0, NOW, NAN) } },
	{ "json door an object", &src_json_contact, "lab/door",
	    "{\"contact\":{}}", 0, BAD(REASON_NOT_NUMBER) },
	{ "json power watts", &src_json_door, "lab/plug", "{\"power\":71.5}",
	    0, READINGS(1), { WATTS("lab/plug", 71.5, NOW) } },
	{ "json power boolean off", &src_json_door, "lab/plug",
	    "{\"power\":false}", 0, READINGS(1),
	    { ONOFF("lab/plug", 0, NOW) } },
	{ "json power boolean on", &src_json_door, "lab/plug",
	    "{\"power\":true}", 0, READINGS(1),
	    { ONOFF("lab/plug", 1, NOW) } },
	{ "json neither door nor power", &src_json_door, "lab/plug",
	    "{\"watts\":3}", 0, BADMSG(REASON_NO_TEMPERATURE,
	    "payload has no door state at /door nor power at /power") },
	{ "json power a string", &src_json_door, "lab/plug",
	    "{\"power\":\"high\"}", 0, BAD(REASON_NOT_NUMBER) },
};

#define TABLE(t)	{ #t, t, sizeof t / sizeof t[0] }
static const struct table tables[] = {
	TABLE(z2m_cases),
	TABLE(tasmota_cases),
	TABLE(shelly_cases),
	TABLE(gen2_cases),
	TABLE(number_cases),
	TABLE(ttn_cases),
	TABLE(json_cases),
	TABLE(input_cases),
	TABLE(bad_cases),
};

/* RFC 3339 and epoch times, each as the value of "ts" in a json payload. */
static const struct {
	const char		*value;
	int64_t			 ts_us;
	enum payload_reason	 reason;
} time_cases[] = {
	{ "\"2020-02-12T15:15:49.328347Z\"", 1581520549328347LL, REASON_NONE },
	{ "\"2021-04-26T10:01:34+02:00\"", 1619424094 * SEC, REASON_NONE },
	{ "\"2021-04-26T10:01:34-05:30\"", 1619451094 * SEC, REASON_NONE },
	{ "\"2021-04-26t08:01:34z\"", 1619424094 * SEC, REASON_NONE },
	{ "\"2021-04-26 08:01:34Z\"", 1619424094 * SEC, REASON_NONE },
	{ "\"2023-11-14T22:10:05.5Z\"", 1699999805500000LL, REASON_NONE },
	{ "\"2023-11-14T22:10:05.1234567891Z\"", 1699999805123456LL,
	    REASON_NONE },
	{ "\"2000-02-29T00:00:00Z\"", 951782400 * SEC, REASON_NONE },
	{ "\"2000-01-01T00:00:00Z\"", 946684800 * SEC, REASON_NONE },
	{ "\"2016-12-31T23:59:60Z\"", 1483228800 * SEC, REASON_NONE },
	{ "\"2023-11-14T22:20:00Z\"", 1700000400 * SEC, REASON_NONE },
	{ "\"2021-04-26T10:01:34\"", NOW, REASON_NONE },
	{ "\"1700000000\"", 1700000000 * SEC, REASON_NONE },
	{ "1700000000", 1700000000 * SEC, REASON_NONE },
	{ "1700000000.12", 1700000000120000LL, REASON_NONE },
	{ "1700000000123", 1700000000123000LL, REASON_NONE },
	{ "946684800000", 946684800 * SEC, REASON_NONE },
	{ "1700000000123456", 1700000000123456LL, REASON_NONE },
	{ "1700000000123456789", 1700000000123457LL, REASON_NONE },
	{ "null", NOW, REASON_NONE },
	{ "\"2023-11-14T22:25:00Z\"", 0, REASON_FUTURE },
	{ "\"2023-11-14T22:20:01Z\"", 0, REASON_FUTURE },
	{ "\"1999-12-31T23:59:59Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-02-29T00:00:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-31T00:00:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-13-01T00:00:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-00-01T00:00:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-00T00:00:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T24:00:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:60:00Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:61Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:34+24:00\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:34+02:60\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:34+02\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:34+0200\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:34.Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01:34Zjunk\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26T10:01\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"2021-04-26\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"21-04-26T10:01:34Z\"", 0, REASON_BAD_TIMESTAMP },
	{ "\"\"", 0, REASON_BAD_TIMESTAMP },
	{ "-1", 0, REASON_BAD_TIMESTAMP },
	{ "12345", 0, REASON_BAD_TIMESTAMP },
	{ "1e300", 0, REASON_BAD_TIMESTAMP },
	{ "[]", 0, REASON_BAD_TIMESTAMP },
};

#include "../fuzz/presets.h"

/* Whether two strings, either maybe NULL, are the same. */
static int
same(const char *a, const char *b)
{
	return ((a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0));
}

/* Whether s is valid UTF-8. */
static int
utf8_valid(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	int			 n;

	while (*p != '\0') {
		if (*p < 0x80)
			n = 0;
		else if (*p >= 0xc2 && *p <= 0xdf)
			n = 1;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 2;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 3;
		else
			return (0);
		for (p++; n > 0; n--, p++) {
			if ((*p & 0xc0) != 0x80)
				return (0);
		}
	}
	return (1);
}

/* Fill the generated payloads and topics. */
static void
setup(void)
{
	static const char	head[] = "{\"temperature\":4.2,\"pad\":\"";
	uint32_t		x = 0x2545f491;
	size_t			i, off;

	memset(big_ok, 'x', sizeof big_ok);
	memcpy(big_ok, head, sizeof head - 1);
	memcpy(big_ok + sizeof big_ok - 2, "\"}", 2);
	memcpy(big, big_ok, sizeof big_ok);
	big[sizeof big - 1] = ' ';
	memset(deep, '[', sizeof deep);
	for (i = 0; i < sizeof noise; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		noise[i] = (char)(x >> 24);
	}
	off = snprintf(probes, sizeof probes, "{%s", TASMOTA_TIME);
	for (i = 1; i <= 17; i++) {
		off += snprintf(probes + off, sizeof probes - off,
		    ",\"DS18B20-%zu\":{\"Temperature\":%zu.0}", i, i);
	}
	snprintf(probes + off, sizeof probes - off, ",\"TempUnit\":\"C\"}");
	memset(key255, 'k', sizeof key255 - 1);
	memcpy(key255, "lab/", 4);
	memset(key256, 'k', sizeof key256 - 1);
	memcpy(key256, "lab/", 4);
}

/* Check one reading against what the case wants. */
static void
check_reading(const char *name, int i, const struct reading *got,
    const struct want *want)
{
	is_int(got->kind, want->kind, "%s: reading %d kind", name, i);
	is_str(got->key, want->key, "%s: reading %d key", name, i);
	is_double(got->temp_c, want->temp_c, 0.01, "%s: reading %d temp_c",
	    name, i);
	is_int(got->ts_us, want->ts_us, "%s: reading %d ts_us", name, i);
	is_double(got->humidity, want->humidity, 0.01,
	    "%s: reading %d humidity", name, i);
	is_double(got->battery, want->battery, 0.01, "%s: reading %d battery",
	    name, i);
	if (want->kind == READING_DOOR)
		is_int(got->door_open, (int)want->value, "%s: reading %d door",
		    name, i);
	if (want->kind == READING_POWER) {
		is_double(got->power_w, want->value, 0.001,
		    "%s: reading %d power_w", name, i);
		is_int(got->power_on, want->power_on,
		    "%s: reading %d power_on", name, i);
	}
}

/* Decode one case and check all it expects. */
static void
check_case(const char *table, const struct tcase *c)
{
	struct payload_result	 res;
	char			 name[256];
	size_t			 len;
	int			 rc, i;

	snprintf(name, sizeof name, "%s: %s", table, c->name);
	len = c->len != 0 ? c->len : strlen(c->payload);
	rc = payload_decode(c->src, c->topic, c->payload, len, NOW, &res);
	if (!is_int(rc, c->rc, "%s: returns %d", name, c->rc))
		printf("#   detail: %s\n", res.detail);
	is_str(payload_reason_label(res.reason),
	    payload_reason_label(c->reason), "%s: reason", name);
	if (c->rc == -1) {
		ok(res.detail[0] != '\0' && utf8_valid(res.detail),
		    "%s: detail is a UTF-8 sentence", name);
		if (c->detail != NULL)
			is_str(res.detail, c->detail, "%s: detail", name);
		return;
	}
	is_int(res.n, c->rc, "%s: n", name);
	for (i = 0; i < c->rc && i < 3 && rc == c->rc; i++)
		check_reading(name, i, &res.r[i], &c->r[i]);
}

/* The 16th and last reading kept from the 17 tasmota probes. */
static void
check_many(void)
{
	struct payload_result	res;
	int			rc;

	rc = payload_decode(&src_tasmota, "tele/fridge9/SENSOR", probes,
	    strlen(probes), NOW, &res);
	is_int(rc, PAYLOAD_MAX_READINGS, "many: 16 readings");
	is_str(res.r[PAYLOAD_MAX_READINGS - 1].key,
	    "tele/fridge9/SENSOR/DS18B20-16", "many: the 16th is DS18B20-16");
	is_double(res.r[PAYLOAD_MAX_READINGS - 1].temp_c, 16.0, 0.01,
	    "many: the 16th is 16 °C");
}

/* Each time case, as "ts" of a json payload. */
static void
check_times(void)
{
	struct payload_result	res;
	char			buf[256];
	size_t			i;
	int			rc;

	for (i = 0; i < sizeof time_cases / sizeof time_cases[0]; i++) {
		snprintf(buf, sizeof buf, "{\"temperature\":4,\"ts\":%s}",
		    time_cases[i].value);
		rc = payload_decode(&src_json_ts, "lab/fridge", buf,
		    strlen(buf), NOW, &res);
		is_str(payload_reason_label(res.reason),
		    payload_reason_label(time_cases[i].reason),
		    "time %s: reason", time_cases[i].value);
		if (time_cases[i].reason != REASON_NONE)
			continue;
		is_int(rc, 1, "time %s: one reading", time_cases[i].value);
		is_int(res.r[0].ts_us, time_cases[i].ts_us, "time %s: ts_us",
		    time_cases[i].value);
	}
}

/* Every reason has its /metrics label. */
static void
check_labels(void)
{
	static const char	*want[REASON_COUNT] = {
		"none", "too_large", "empty", "not_json", "not_number",
		"no_temperature", "not_finite", "out_of_range",
		"future_timestamp", "bad_timestamp", "bad_key", "bad_topic",
		"no_source"
	};
	int			 i;

	for (i = 0; i < REASON_COUNT; i++)
		is_str(payload_reason_label(i), want[i], "label of %d", i);
	is_str(payload_reason_label(REASON_COUNT), "unknown",
	    "label of an unknown reason");
}

/* A result reused after a refusal carries no stale reason. */
static void
check_reuse(void)
{
	struct payload_result	res;

	payload_decode(&src_json, "lab/fridge", "{", 1, NOW, &res);
	is_int(payload_decode(&src_json, "lab/fridge", "{\"temperature\":4}",
	    17, NOW, &res), 1, "reuse: decodes after a refusal");
	is_int(res.reason, REASON_NONE, "reuse: no stale reason");
	is_str(res.detail, "", "reuse: no stale detail");
}

#define LONG_NAME \
    "a-name-of-sixty-four-characters-to-make-keys-longer-than-usual--" \
    "a-name-of-sixty-four-characters-to-make-keys-longer-than-usual--"
/* Keys a sharded daemon's filter reaches, or not. */
static const struct {
	const char		*name;
	const struct source	*src;
	const char		*filter;
	const char		*key;
	int			 want;
} reach_cases[] = {
	{ "clinic a's sensor", &src_z2m, "zigbee2mqtt/clinic-a/#",
	    "zigbee2mqtt/clinic-a/fridge", 1 },
	{ "not clinic b's", &src_z2m, "zigbee2mqtt/clinic-a/#",
	    "zigbee2mqtt/clinic-b/fridge", 0 },
	{ "not a key of another shape", &src_z2m, "zigbee2mqtt/clinic-a/#",
	    "fridge1", 0 },
	{ "z2m availability topic", &src_z2m, "zigbee2mqtt/+/availability",
	    "zigbee2mqtt/fridge", 1 },
	{ "ttn filter naming the tenant", &src_ttn,
	    "v3/vaccines@clinics/devices/+/up", "v3/vaccines/devices/probe-1",
	    1 },
	{ "not another ttn application", &src_ttn,
	    "v3/vaccines@clinics/devices/+/up", "v3/other/devices/probe-1", 0 },
	{ "ttn wildcard filter", &src_ttn, "v3/+/devices/#",
	    "v3/vaccines/devices/probe-1", 1 },
	{ "tasmota probe of clinic a", &src_tasmota, "tele/clinic-a/+/SENSOR",
	    "tele/clinic-a/fridge1/SENSOR/DS18B20", 1 },
	{ "not a tasmota probe of clinic b", &src_tasmota,
	    "tele/clinic-a/+/SENSOR", "tele/clinic-b/fridge1/SENSOR/DS18B20",
	    0 },
	{ "shelly gen1 temperature topic", &src_shelly,
	    "shellies/+/sensor/temperature", "shellies/ht-1", 1 },
	{ "shelly gen2 events topic", &src_gen2, "clinic-a/+/events/rpc",
	    "clinic-a/ht/temperature:0", 1 },
	{ "not a gen2 key that is no temperature", &src_gen2,
	    "clinic-a/+/events/rpc", "clinic-a/ht/humidity:0", 0 },
	{ "esphome state topic", &src_esphome, "esp/sensor/+/state",
	    "esp/sensor/fridge", 1 },
	{ "tasmota object name with a slash", &src_tasmota, "tele/+/SENSOR",
	    "tele/f1/SENSOR/A/B", 1 },
	{ "ttn tenant under a + first level", &src_ttn,
	    "+/vaccines@clinics/devices/+/up", "v3/vaccines/devices/probe-1", 1 },
	{ "a key longer than any payload key", &src_z2m, "zigbee2mqtt/#",
	    "zigbee2mqtt/" LONG_NAME LONG_NAME, 1 },
};

/*
 * topic.c goes back from a key to its topics: every key decoded by the
 * tables is reached from a filter that is its own topic and from "#",
 * never from another shard's prefix.
 */
static void
check_reach_case(const char *table, size_t i, const struct tcase *c)
{
	struct payload_result	res;
	struct source		s = *c->src;
	size_t			len = c->len != 0 ? c->len : strlen(c->payload);
	int			k, rc;

	if (c->rc <= 0 || strpbrk(c->topic, "+#") != NULL)
		return;
	rc = payload_decode(c->src, c->topic, c->payload, len, NOW, &res);
	for (k = 0; k < rc; k++) {
		s.filter = c->topic;
		ok(topic_source_reaches(&s, res.r[k].key),
		    "reach %s %zu: %s from filter %s", table, i, res.r[k].key,
		    c->topic);
		s.filter = "#";
		ok(topic_source_reaches(&s, res.r[k].key),
		    "reach %s %zu: %s from #", table, i, res.r[k].key);
		s.filter = "other-shard/#";
		ok(!topic_source_reaches(&s, res.r[k].key),
		    "reach %s %zu: %s not from other-shard/#", table, i,
		    res.r[k].key);
	}
}

static void
check_reach(void)
{
	struct source	s = src_z2m;
	struct conf	c;
	size_t		t, i;

	for (t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		for (i = 0; i < tables[t].n; i++)
			check_reach_case(tables[t].name, i,
			    &tables[t].cases[i]);
	}

	for (i = 0; i < sizeof reach_cases / sizeof reach_cases[0]; i++) {
		s = *reach_cases[i].src;
		s.filter = reach_cases[i].filter;
		is_int(topic_source_reaches(&s, reach_cases[i].key),
		    reach_cases[i].want, "reach: %s (%s from %s)",
		    reach_cases[i].name, reach_cases[i].key, s.filter);
	}

	memset(&c, 0, sizeof c);
	ok(!topic_conf_reaches(&c, "zigbee2mqtt/fridge"),
	    "reach: a config without sources reaches nothing");
	s = src_z2m;
	s.filter = "zigbee2mqtt/clinic-a/#";
	c.sources = &s;
	c.nsources = 1;
	ok(topic_conf_reaches(&c, "zigbee2mqtt/clinic-a/fridge") &&
	    !topic_conf_reaches(&c, "zigbee2mqtt/clinic-b/fridge"),
	    "reach: a config reaches what its sources reach");
}

/* The fuzzer's first byte for a source: format, unit and preset. */
static int
fuzz_byte(const struct source *src)
{
	const char	*t = src->temperature, *ts = src->timestamp;
	int		 i, match, preset = 0, f = src->format;

	for (i = 0; i < 8; i++) {
		if (f == FORMAT_ZIGBEE2MQTT)
			match = same(src->filter, presets[i].filter);
		else
			match = same(t, presets[i].temperature) &&
			    same(ts, presets[i].timestamp) &&
			    same(src->door, presets[i].door) &&
			    same(src->door_open_value,
			    presets[i].door_open_value) &&
			    same(src->power, presets[i].power);
		if (match) {
			preset = i;
			break;
		}
	}
	if ((unsigned)f >= FORMAT_COUNT)
		f = FORMAT_JSON;
	return (f + FORMAT_COUNT * ((src->unit == 'F') + 2 * preset));
}

/* Write a case as a fuzzer input: format byte, topic, newline, payload. */
static int
write_seed(const char *dir, const char *table, size_t i,
    const struct tcase *c)
{
	char	path[1024];
	size_t	len = c->len != 0 ? c->len : strlen(c->payload);
	FILE	*f;

	if (len > 4096 || strchr(c->topic, '\n') != NULL)
		return (0);
	snprintf(path, sizeof path, "%s/%.*s-%02zu", dir,
	    (int)strcspn(table, "_"), table, i);
	if ((f = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return (-1);
	}
	fputc(fuzz_byte(c->src), f);
	fprintf(f, "%s\n", c->topic);
	fwrite(c->payload, 1, len, f);
	return (fclose(f) == 0 ? 0 : -1);
}

/* Write every case that fits as a seed into dir. */
static int
write_corpus(const char *dir)
{
	size_t	t, i;

	setup();
	for (t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		for (i = 0; i < tables[t].n; i++) {
			if (write_seed(dir, tables[t].name, i,
			    &tables[t].cases[i]) == -1)
				return (1);
		}
	}
	return (0);
}

int
main(int argc, char **argv)
{
	size_t	t, i;

	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return (write_corpus(argv[2]));
	setup();
	for (t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		for (i = 0; i < tables[t].n; i++)
			check_case(tables[t].name, &tables[t].cases[i]);
	}
	check_many();
	check_times();
	check_labels();
	check_reuse();
	check_reach();
	return (done_testing());
}
