-- cvcatalog spatial macros: the filters of cvcatalog.spatial for a plain DuckDB session.
-- Needs DuckDB's spatial extension (LOAD spatial) and SET geometry_always_xy = false: the
-- macros give ST_Distance_Spheroid its points as (latitude, longitude), the order DuckDB
-- spatial 1.5.5 reads them in unless geometry_always_xy is true. Positions are WGS84
-- latitude/longitude in degrees; distances are geodesic metres on the WGS84 spheroid. Areas
-- that cross the antimeridian or reach a pole are not supported.
--
--   cv_distance_m(lat, lon, lat2, lon2)                       geodesic distance (m)
--   cv_within(lat, lon, c_lat, c_lon, radius_m)               within radius_m of a point
--   cv_in_bbox(lat, lon, lat_min, lon_min, lat_max, lon_max)  inside a box (bounds inclusive)
--   cv_near_line(lat, lon, wkt_linestring, buffer_m)          within buffer_m of a line given as
--                                                             WKT (longitude latitude order)
--   cv_near_points(lat, lon, lats, lons, buffer_m)            the same with the line's vertices
--                                                             as two lists (latitudes, longitudes)
--
-- cv_within, cv_near_line and cv_near_points start with a latitude/longitude range test, so
-- with constant arguments DuckDB skips Parquet row groups by their min/max statistics.

SET geometry_always_xy = false;

CREATE OR REPLACE MACRO cv_distance_m(lat, lon, lat2, lon2) AS
    ST_Distance_Spheroid(ST_Point2D(lat, lon), ST_Point2D(lat2, lon2));

CREATE OR REPLACE MACRO cv_within_exact(lat, lon, c_lat, c_lon, radius_m) AS
    ST_Distance_Spheroid(ST_Point2D(lat, lon), ST_Point2D(c_lat, c_lon)) <= radius_m;

-- degrees of latitude a distance can span at most (one degree is >= 110574 m, at the equator; 110500
-- leaves a margin), and degrees of longitude at the highest latitude reached (1 % margin)
CREATE OR REPLACE MACRO cv__dlat(m) AS m / 110500.0;

CREATE OR REPLACE MACRO cv__dlon(abs_lat, m) AS
    m / (111319.49 * cos(radians(least(89.999, abs_lat + m / 110500.0)))) * 1.01;

CREATE OR REPLACE MACRO cv_within(lat, lon, c_lat, c_lon, radius_m) AS
    lat BETWEEN c_lat - cv__dlat(radius_m) AND c_lat + cv__dlat(radius_m)
    AND lon BETWEEN c_lon - cv__dlon(abs(c_lat), radius_m) AND c_lon + cv__dlon(abs(c_lat), radius_m)
    AND cv_within_exact(lat, lon, c_lat, c_lon, radius_m);

CREATE OR REPLACE MACRO cv_in_bbox(lat, lon, lat_min, lon_min, lat_max, lon_max) AS
    lat BETWEEN lat_min AND lat_max AND lon BETWEEN lon_min AND lon_max;

-- One segment A-B seen from the point (lat, lon): its nearest point C, found in the local plane
-- at the point (x: degrees of longitude * cos(lat), y: degrees of latitude * M/N, unit: N * pi/180
-- metres, with M, N the WGS84 radii of curvature), and the planar distance to it.
-- (defined innermost first: a macro can only call macros defined before it)
CREATE OR REPLACE MACRO cv__seg_at(alat, alon, blat, blon, ax, ay, dx, dy, unit, t) AS
    {'planar': sqrt((ax + t * dx) * (ax + t * dx) + (ay + t * dy) * (ay + t * dy)) * unit,
     'c_lat': alat + t * (blat - alat),
     'c_lon': alon + t * (blon - alon)};

CREATE OR REPLACE MACRO cv__seg_plane(alat, alon, blat, blon, ax, ay, dx, dy, unit) AS
    cv__seg_at(alat, alon, blat, blon, ax, ay, dx, dy, unit,
        CASE WHEN dx * dx + dy * dy > 0
             THEN greatest(0.0, least(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy)))
             ELSE 0.0 END);

CREATE OR REPLACE MACRO cv__seg_scaled(lat, lon, alat, alon, blat, blon, kx, ky, unit) AS
    cv__seg_plane(alat, alon, blat, blon,
        (alon - lon) * kx, (alat - lat) * ky, (blon - alon) * kx, (blat - alat) * ky, unit);

CREATE OR REPLACE MACRO cv__seg(lat, lon, alat, alon, blat, blon) AS
    cv__seg_scaled(lat, lon, alat, alon, blat, blon,
        cos(radians(lat)),
        (1 - 0.0066943799901413165) / (1 - 0.0066943799901413165 * sin(radians(lat)) * sin(radians(lat))),
        6378137.0 / sqrt(1 - 0.0066943799901413165 * sin(radians(lat)) * sin(radians(lat))) * pi() / 180);

-- exact test: a segment whose planar distance is within 5 % + 1 m of the buffer is measured on
-- the spheroid from the point to its nearest point C
CREATE OR REPLACE MACRO cv_near_points_exact(lat, lon, lats, lons, buffer_m) AS
    coalesce(list_bool_or(list_transform(
        list_filter(
            list_transform(range(1, len(lats)),
                lambda i: cv__seg(lat, lon, lats[i], lons[i], lats[i + 1], lons[i + 1])),
            lambda s: s.planar <= buffer_m * 1.05 + 1.0),
        lambda s: ST_Distance_Spheroid(ST_Point2D(lat, lon), ST_Point2D(s.c_lat, s.c_lon)) <= buffer_m)),
        false);

CREATE OR REPLACE MACRO cv_near_points(lat, lon, lats, lons, buffer_m) AS
    lat BETWEEN list_min(lats) - cv__dlat(buffer_m) AND list_max(lats) + cv__dlat(buffer_m)
    AND lon BETWEEN list_min(lons) - cv__dlon(greatest(abs(list_min(lats)), abs(list_max(lats))), buffer_m)
                AND list_max(lons) + cv__dlon(greatest(abs(list_min(lats)), abs(list_max(lats))), buffer_m)
    AND cv_near_points_exact(lat, lon, lats, lons, buffer_m);

CREATE OR REPLACE MACRO cv__line_lats(wkt) AS
    [ST_Y(d.geom) FOR d IN ST_Dump(ST_Points(ST_GeomFromText(CAST(wkt AS VARCHAR))))];

CREATE OR REPLACE MACRO cv__line_lons(wkt) AS
    [ST_X(d.geom) FOR d IN ST_Dump(ST_Points(ST_GeomFromText(CAST(wkt AS VARCHAR))))];

CREATE OR REPLACE MACRO cv_near_line(lat, lon, wkt_linestring, buffer_m) AS
    cv_near_points(lat, lon, cv__line_lats(wkt_linestring), cv__line_lons(wkt_linestring), buffer_m);
