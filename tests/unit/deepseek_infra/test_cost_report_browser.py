"""The cost report's HTML page in a real browser: headless Chromium renders it and the
screenshot must show the chart (its plot area, the local and cloud lines, the break-even
marker). The report is the lab inventory's (two nodes of the lab fleet's default profiles,
the lab's model and engine), with a throughput and cloud price entered as ``--data`` would.

The PNG is decoded here (zlib and the five PNG row filters): no imaging library needed.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State

from deepseek_infra.cost_report import (
    BREAK_EVEN_COLOUR, CLOUD_COLOUR, LOCAL_COLOUR, PLOT_BACKGROUND, render_html,
)
from lab.fleet import DEFAULT_PROFILES
from lab.hwsim.reading import profile_hardware
from roles.report.tasks import fleet_report

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1000, 640)
LAB_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # inventories/lab_settings.py deepseek_model

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt install chromium)")


# --- PNG decoding ------------------------------------------------------------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((value + above) & 0xFF for value, above in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                corner = previous[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    if channels == 4:  # drop alpha: the page is opaque
        rows = [bytes(b for i, b in enumerate(row) if i % 4 != 3) for row in rows]
    return width, height, rows


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int], tolerance: int = 10) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def chart_pixels(png: bytes) -> dict[str, int]:
    """Pixels of each chart colour inside the plot area, found by its background colour
    (``plot``: the plot area's bounding box size, 0 when the page shows none)."""
    width, height, rows = decode_png(png)
    background = _rgb(PLOT_BACKGROUND)
    found = [(x, y) for y, row in enumerate(rows) for x in range(width)
             if tuple(row[3 * x:3 * x + 3]) == background]
    counts = {"plot": 0, "local": 0, "cloud": 0, "break_even": 0}
    if not found:
        return counts
    xs, ys = [x for x, _ in found], [y for _, y in found]
    box = (min(xs), min(ys), max(xs), max(ys))
    counts["plot"] = (box[2] - box[0]) * (box[3] - box[1])
    colours = {"local": _rgb(LOCAL_COLOUR), "cloud": _rgb(CLOUD_COLOUR), "break_even": _rgb(BREAK_EVEN_COLOUR)}
    for y in range(box[1], box[3] + 1):
        row = rows[y]
        for x in range(box[0], box[2] + 1):
            pixel = tuple(row[3 * x:3 * x + 3])
            for name, colour in colours.items():
                if _near(pixel, colour):
                    counts[name] += 1
    return counts


def assert_chart_rendered(png: bytes) -> dict[str, int]:
    counts = chart_pixels(png)
    assert counts["plot"] > 200 * 100, f"no plot area ({PLOT_BACKGROUND}) in the screenshot: {counts}"
    # each line is 5 px wide across the plot: hundreds of pixels of its own colour
    assert counts["local"] > 1000, f"the local line ({LOCAL_COLOUR}) is missing: {counts}"
    assert counts["cloud"] > 1000, f"the cloud line ({CLOUD_COLOUR}) is missing: {counts}"
    assert counts["break_even"] > 100, f"the break-even marker ({BREAK_EVEN_COLOUR}) is missing: {counts}"
    return counts


def screenshot(page: Path, out: Path) -> bytes:
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={out}", f"--window-size={WINDOW[0]},{WINDOW[1]}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0 and out.exists(), f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return out.read_bytes()


# --- the lab inventory's report ------------------------------------------------------------------


def lab_report(**entered):
    """The lab inventory's report: nodes of the fleet's default profiles, round-robin like
    ``python -m lab up 2``, with the lab's model and engine (on the CPU) and ``entered`` data."""
    profiles = {f"lab-node-{i + 1}": DEFAULT_PROFILES[i % len(DEFAULT_PROFILES)] for i in range(2)}
    lab = {"deepseek_model": LAB_MODEL, "deepseek_engine": "transformers", "serve_transformers_device": "cpu",
           "report_power_price_per_kwh": 0.15, **entered}
    state = State(Inventory((list(profiles), lab), gpu_nodes=(list(profiles), {})), Config())
    return fleet_report(state, list(profiles), lambda host: profile_hardware(profiles[host.name]),
                        state.inventory.get_host("lab-node-1"))


def test_the_png_decoder_reads_the_filters_chromium_writes(tmp_path):
    page = tmp_path / "swatch.html"
    page.write_text(f'<body style="margin:0;background:#ffffff"><div style="width:300px;height:200px;'
                    f'background:{LOCAL_COLOUR}"></div></body>')
    width, height, rows = decode_png(screenshot(page, tmp_path / "swatch.png"))
    assert (width, height) == WINDOW
    assert tuple(rows[100][3 * 150:3 * 150 + 3]) == _rgb(LOCAL_COLOUR)  # inside the block
    assert tuple(rows[100][3 * 600:3 * 600 + 3]) == (255, 255, 255)  # beside it


def test_the_lab_report_renders_its_chart_in_chromium(tmp_path):
    report = lab_report(report_throughput_tokens_per_s=2000, report_cloud_price_per_million_tokens=3.0)
    assert report.compared and report.break_even_months is not None  # the page has all three to show
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    counts = assert_chart_rendered(screenshot(page, tmp_path / "report.png"))
    assert counts["local"] > 1000 and counts["cloud"] > 1000, counts


def test_a_page_without_the_chart_fails_the_check(tmp_path):
    report = lab_report(report_throughput_tokens_per_s=2000, report_cloud_price_per_million_tokens=3.0)
    text = render_html(report)
    without = re.sub(r"<svg id=\"cost-chart\".*?</svg>", "<p>chart missing</p>", text, flags=re.S)
    assert without != text and "polyline" not in without
    page = tmp_path / "no-chart.html"
    page.write_text(without, encoding="utf-8")
    png = screenshot(page, tmp_path / "no-chart.png")
    assert chart_pixels(png) == {"plot": 0, "local": 0, "cloud": 0, "break_even": 0}
    with pytest.raises(AssertionError, match="no plot area"):
        assert_chart_rendered(png)


def test_without_a_cloud_price_only_the_local_line_is_drawn(tmp_path):
    report = lab_report()  # the lab as it ships: nothing measured, no cloud price
    page = tmp_path / "local-only.html"
    page.write_text(render_html(report), encoding="utf-8")
    counts = chart_pixels(screenshot(page, tmp_path / "local-only.png"))
    assert counts["plot"] > 200 * 100 and counts["local"] > 1000, counts
    assert counts["cloud"] == 0 and counts["break_even"] == 0, counts
    with pytest.raises(AssertionError, match="cloud line"):
        assert_chart_rendered(screenshot(page, tmp_path / "local-only-2.png"))

