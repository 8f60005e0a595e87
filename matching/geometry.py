"""H3 resolution of the index's leaves.

The index buckets ONLINE artisans by (specialty, H3 cell) at resolution 8
(average hexagon edge ~0.53 km, area ~0.74 km^2); the cells' ancestors form the
search tree of :mod:`matching.kernels_tree`.  In the dense Paris benchmark
(50k ONLINE artisans per specialty, sigma ~9 km) a leaf holds ~70 artisans of
one specialty near the centre: small enough that a k=10 query opens a handful of
leaves, large enough that the tree above them stays shallow (8 levels).

Exactness does not depend on the H3 geometry (cells may be distorted, pentagons
lack a child): each node's bounding box is computed from its members' own unit
vectors, so the search bounds hold anywhere on the sphere, at the poles and
across the antimeridian included.
"""

from __future__ import annotations

from typing import Final

from matching.jit import LEAF_RES

H3_RES: Final = LEAF_RES
