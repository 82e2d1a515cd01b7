from __future__ import annotations

import numpy as np
import pytest

from textlayer.worker.orientation import is_upside_down, rotate_image, unrotate_points


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_unrotate_maps_each_pixel_back(degrees):
    image = np.zeros((30, 50), dtype=np.uint8)
    image[7, 11] = 255  # pixel centre (11.5, 7.5)
    turned = rotate_image(image, degrees)
    ys, xs = np.nonzero(turned)
    centre = np.array([[xs[0] + 0.5, ys[0] + 0.5]])
    assert unrotate_points(centre, degrees, 50, 30)[0] == pytest.approx([11.5, 7.5])


def test_upside_down_vote_is_weighted_by_width():
    assert is_upside_down([0.9, 0.9, 0.1], [100, 100, 50])
    assert not is_upside_down([0.95, 0.1, 0.1], [50, 200, 200])
    assert not is_upside_down([], [])
