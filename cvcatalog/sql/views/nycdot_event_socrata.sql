-- NYCDOT EVENT under the data.transportation.gov (Socrata) flattened column names, in the order
-- of the NycdotEVENTFlattener column list, plus source. Existing analysis pipelines expect these
-- names. Only valid rows (invalid_reason IS NULL) are included, as the portal did.
--
-- Placeholders, filled by cvcatalog.schemas:
--   {view}      the quoted view name
--   {relation}  a FROM item with the canonical columns plus source (the canonical view, or a
--               registered data frame)
--
-- dayOfWeekBin and timeOfDayBin are the last two parts of eventTimeBin as published ('N/A'
-- stays 'N/A'); nearRSU, bureauBin (the borough) and roadTypeBin split eventLocationBin and are
-- NULL for 'N/A' and 'nonNYC'. (The flattener meant roadTypeBin but wrote the road type under
-- another name, leaving that column empty; here it is filled.) Parameters are the published
-- strings. bsmList, mapList, spatList and timList are JSON text as the flattener wrote them;
-- bsmList is rebuilt from the typed BSMs with the published key names (a field a BSM lacks
-- reads null).
CREATE OR REPLACE VIEW {view} AS
SELECT
    e.event_time_bin AS "eventHeader_eventTimeBin",
    CASE WHEN e.event_year IS NOT NULL THEN split_part(e.event_time_bin, '-', 3) END AS "dayOfWeekBin",
    CASE WHEN e.event_year IS NOT NULL THEN split_part(e.event_time_bin, '-', 4) END AS "timeOfDayBin",
    e.event_location_bin AS "eventHeader_eventLocationBin",
    e.near_rsu AS "nearRSU",
    e.borough_bin AS "bureauBin",
    e.road_type_bin AS "roadTypeBin",
    e.location_source AS "eventHeader_locationSource",
    e.asd_firmware_version AS "eventHeader_asdFirmwareVersion",
    e.event_alert_active AS "eventHeader_eventAlertActive",
    e.event_alert_sent AS "eventHeader_eventAlertSent",
    e.event_alert_heard AS "eventHeader_eventAlertHeard",
    e.host_veh_id AS "eventHeader_hostVehID",
    e.target_veh_id AS "eventHeader_targetVehID",
    e.trigger_hv_seq_num AS "eventHeader_triggerHVSeqNum",
    e.trigger_tv_seq_num AS "eventHeader_triggerTVSeqNum",
    e.event_type AS "eventHeader_eventType",
    e.event_status AS "eventHeader_eventStatus",
    e.grp_id AS "eventHeader_grpId",
    e.weather_condition AS "eventHeader_weatherCondition",
    e.air_temperature_f AS "eventHeader_airTemperature",
    e.precipitation_1hr AS "eventHeader_precipitation1Hr",
    e.wind_speed_kt AS "eventHeader_windSpeed",
    e.speed_condition_mph AS "eventHeader_speedCondition",
    e.last_plowed_min AS "eventHeader_lastPlowed",
    json_extract_string(e.parameters, '$.recordingROI') AS "eventHeader_parameters_recordingROI",
    json_extract_string(e.parameters, '$.timeRecordBefore') AS "eventHeader_parameters_timeRecordBefore",
    json_extract_string(e.parameters, '$.timeRecordFollow') AS "eventHeader_parameters_timeRecordFollow",
    json_extract_string(e.parameters, '$.timeRecordResolution') AS "eventHeader_parameters_timeRecordResolution",
    json_extract_string(e.parameters, '$.minSpdThreshold') AS "eventHeader_parameters_minSpdThreshold",
    json_extract_string(e.parameters, '$.timeToCrash') AS "eventHeader_parameters_timeToCrash",
    json_extract_string(e.parameters, '$.excessiveCurveSpd') AS "eventHeader_parameters_excessiveCurveSpd",
    json_extract_string(e.parameters, '$.excessiveSpd') AS "eventHeader_parameters_excessiveSpd",
    json_extract_string(e.parameters, '$.excessiveSpdTime') AS "eventHeader_parameters_excessiveSpdTime",
    json_extract_string(e.parameters, '$.excessiveCurveSpdTime') AS "eventHeader_parameters_excessiveCurveSpdTime",
    json_extract_string(e.parameters, '$.excessiveZoneSpd') AS "eventHeader_parameters_excessiveZoneSpd",
    json_extract_string(e.parameters, '$.excessiveZoneSpdTime') AS "eventHeader_parameters_excessiveZoneSpdTime",
    json_extract_string(e.parameters, '$.minCurveSpd') AS "eventHeader_parameters_minCurveSpd",
    json_extract_string(e.parameters, '$.minZoneSpd') AS "eventHeader_parameters_minZoneSpd",
    json_extract_string(e.parameters, '$.stopBarTolerance') AS "eventHeader_parameters_stopBarTolerance",
    json_extract_string(e.parameters, '$.yellowDurationTolerance') AS "eventHeader_parameters_yellowDurationTolerance",
    json_extract_string(e.parameters, '$.hardBrakingThreshold') AS "eventHeader_parameters_hardBrakingThreshold",
    json_extract_string(e.parameters, '$.assumedDriverBraking') AS "eventHeader_parameters_assumedDriverBraking",
    json_extract_string(e.parameters, '$.postedHeightLimit') AS "eventHeader_parameters_postedHeightLimit",
    json_extract_string(e.parameters, '$.postedSizeLimit') AS "eventHeader_parameters_postedSizeLimit",
    json_extract_string(e.parameters, '$.postedZoneSpeed') AS "eventHeader_parameters_postedZoneSpeed",
    json_extract_string(e.parameters, '$.regulatorySpeed') AS "eventHeader_parameters_regulatorySpeed",
    to_json(list_transform(e.bsm_list, lambda x: {
        'eventMsgSeqNum': x.event_msg_seq_num,
        'bsmRecord': {
            'msgHeader': {'myRFLevel': x.my_rf_level, 'authenticated': x.authenticated},
            'bsmMsg': {
                'coreData': {
                    'msgCnt': x.msg_cnt,
                    'id': x.vehicle_id,
                    'accuracy': {
                        'semiMajor': x.accuracy_semi_major,
                        'semiMinor': x.accuracy_semi_minor,
                        'orientation': x.accuracy_orientation
                    },
                    'transmission': x.transmission,
                    'angle': x.steering_angle,
                    'accelSet': {
                        'long_mpss': x.accel_long_mps2,
                        'lat_mpss': x.accel_lat_mps2,
                        'vert_mpss': x.accel_vert_mps2,
                        'yaw_dps': x.accel_yaw_dps
                    },
                    'brakes': {
                        'wheelBrakes': x.brakes_wheel_brakes,
                        'traction': x.brakes_traction,
                        'abs': x.brakes_abs,
                        'scs': x.brakes_scs,
                        'brakeBoost': x.brakes_boost,
                        'auxBrakes': x.brakes_aux
                    },
                    'size': {'width': x.size_width_cm, 'length': x.size_length_cm},
                    'X_m': x.x_m,
                    'Y_m': x.y_m,
                    'Z_m': x.z_m,
                    'T_s': x.t_s,
                    'speed_mps': x.speed_mps,
                    'heading_deg': x.heading_deg
                },
                'partII': x.part_ii::JSON
            }
        }
    })) AS "bsmList",
    to_json(list_transform(e.map_list, lambda m: m::JSON)) AS "mapList",
    to_json(list_transform(e.spat_list, lambda m: m::JSON)) AS "spatList",
    to_json(list_transform(e.tim_list, lambda m: m::JSON)) AS "timList",
    e.source AS source
FROM {relation} AS e
WHERE e.invalid_reason IS NULL
