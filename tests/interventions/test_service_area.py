"""ServiceArea.covers: inside and on the outline served, outside not."""

from __future__ import annotations

import shapely

from dispatch.interventions.area import ServiceArea


def test_a_point_on_the_outline_is_covered_one_outside_is_not() -> None:
    # lon 2..3, lat 48..49, with a hole lon 2.4..2.6, lat 48.4..48.6
    square = shapely.Polygon(
        [(2, 48), (3, 48), (3, 49), (2, 49)],
        holes=[[(2.4, 48.4), (2.6, 48.4), (2.6, 48.6), (2.4, 48.6)]],
    )
    area = ServiceArea(square)
    cases = {
        (48.2, 2.2): True,  # inside
        (48.0, 2.0): True,  # a corner
        (48.0, 2.5): True,  # on an edge
        (48.4, 2.5): True,  # on the hole's edge
        (48.5, 2.5): False,  # in the hole
        (47.9, 2.5): False,  # south of it
        (48.5, 3.0000001): False,  # just east
    }
    for (lat, lon), served in cases.items():
        assert area.covers(lat, lon) is served, (lat, lon)
        # the same answer as the shapely predicate it stands for
        assert bool(shapely.covers(square, shapely.Point(lon, lat))) is served
