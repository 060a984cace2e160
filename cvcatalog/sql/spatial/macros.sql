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

-- The corridor test, in stages so that every quantity is computed once per segment (a macro's
-- arguments are substituted as text: one expression passed to several places would be computed
-- at each). Each segment A-B of the line is seen from the point (lat, lon) in the local plane at
-- the point: x = degrees of longitude * cos(lat), y = degrees of latitude * M/N, one unit =
-- N * pi/180 metres (M, N: the WGS84 radii of curvature at lat; e2 = 0.0066943799901413165).
-- (defined innermost first: a macro can only call macros defined before it)
CREATE OR REPLACE MACRO cv__seg_plane(lat, lon, lats, lons) AS
    list_transform(list_zip(lats[1:-2], lons[1:-2], lats[2:], lons[2:]), lambda s: {
        'alat': s[1], 'alon': s[2], 'blat': s[3], 'blon': s[4],
        'ax': (s[2] - lon) * cos(radians(lat)),
        'ay': (s[1] - lat) * (1 - 0.0066943799901413165)
              / (1 - 0.0066943799901413165 * sin(radians(lat)) * sin(radians(lat))),
        'dx': (s[4] - s[2]) * cos(radians(lat)),
        'dy': (s[3] - s[1]) * (1 - 0.0066943799901413165)
              / (1 - 0.0066943799901413165 * sin(radians(lat)) * sin(radians(lat)))});

-- t: where the nearest point C = A + t (B - A) of each segment is
CREATE OR REPLACE MACRO cv__seg_t(segs) AS
    list_transform(segs, lambda s: {
        'alat': s.alat, 'alon': s.alon, 'blat': s.blat, 'blon': s.blon,
        'ax': s.ax, 'ay': s.ay, 'dx': s.dx, 'dy': s.dy,
        't': CASE WHEN s.dx * s.dx + s.dy * s.dy > 0
                  THEN greatest(0.0, least(1.0, -(s.ax * s.dx + s.ay * s.dy) / (s.dx * s.dx + s.dy * s.dy)))
                  ELSE 0.0 END});

-- exact test: a segment whose planar distance to C is within 5 % + 1 m of the buffer is
-- measured on the spheroid, from the point to C
CREATE OR REPLACE MACRO cv__near_segs(lat, lon, segs, buffer_m) AS
    coalesce(list_bool_or(list_transform(
        list_filter(segs, lambda s:
            sqrt((s.ax + s.t * s.dx) * (s.ax + s.t * s.dx) + (s.ay + s.t * s.dy) * (s.ay + s.t * s.dy))
            * 6378137.0 / sqrt(1 - 0.0066943799901413165 * sin(radians(lat)) * sin(radians(lat))) * pi() / 180
            <= buffer_m * 1.05 + 1.0),
        lambda s: ST_Distance_Spheroid(ST_Point2D(lat, lon),
            ST_Point2D(s.alat + s.t * (s.blat - s.alat), s.alon + s.t * (s.blon - s.alon))) <= buffer_m)),
        false);

CREATE OR REPLACE MACRO cv_near_points_exact(lat, lon, lats, lons, buffer_m) AS
    cv__near_segs(lat, lon, cv__seg_t(cv__seg_plane(lat, lon, lats, lons)), buffer_m);

CREATE OR REPLACE MACRO cv_near_points(lat, lon, lats, lons, buffer_m) AS
    lat BETWEEN list_min(lats) - cv__dlat(buffer_m) AND list_max(lats) + cv__dlat(buffer_m)
    AND lon BETWEEN list_min(lons) - cv__dlon(greatest(abs(list_min(lats)), abs(list_max(lats))), buffer_m)
                AND list_max(lons) + cv__dlon(greatest(abs(list_min(lats)), abs(list_max(lats))), buffer_m)
    AND cv_near_points_exact(lat, lon, lats, lons, buffer_m);

CREATE OR REPLACE MACRO cv__line_lats(wkt) AS
    (SELECT [ST_Y(d.geom) FOR d IN ST_Dump(ST_Points(ST_GeomFromText(CAST(wkt AS VARCHAR))))]);

CREATE OR REPLACE MACRO cv__line_lons(wkt) AS
    (SELECT [ST_X(d.geom) FOR d IN ST_Dump(ST_Points(ST_GeomFromText(CAST(wkt AS VARCHAR))))]);

CREATE OR REPLACE MACRO cv_near_line(lat, lon, wkt_linestring, buffer_m) AS
    cv_near_points(lat, lon, cv__line_lats(wkt_linestring), cv__line_lons(wkt_linestring), buffer_m);
