"""The OBS-ready view in Debian's Chromium: `/?view=bare` is the video alone, filling the window,
on a transparent page, with the same stream as the viewer page."""

from __future__ import annotations

from pathlib import Path

import pytest

from dancenow.realtime.bench.web import launch, wait_for
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

pytestmark = [pytest.mark.browser]


def test_bare_view_is_the_video_alone_filling_the_window(live_bundle: Path) -> None:
    from playwright.sync_api import sync_playwright

    with ServerThread(ServeConfig(target=live_bundle, port=0, stamp=False)) as st, sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 640, "height": 360})
            page.goto(st.url + "/?view=bare")
            wait_for(lambda: page.evaluate("() => window.dancenow.framesDecoded || 0") > 10, 30, "decoded frames")
            look = page.evaluate("""() => {
                const v = document.getElementById('target').getBoundingClientRect();
                const shown = (sel) => getComputedStyle(document.querySelector(sel)).display !== 'none';
                return {video: [v.x, v.y, v.width, v.height], header: shown('header'), footer: shown('footer'),
                        background: getComputedStyle(document.body).backgroundColor,
                        scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
                        clip: document.getElementById('target').style.clipPath};
            }""")
            print(f"bare view: {look}")
            assert not look["header"] and not look["footer"]
            assert look["video"] == [0, 0, 640, 360] and look["scroll"] == [640, 360]  # fills it, no scrollbars
            assert look["background"] == "rgba(0, 0, 0, 0)" and look["clip"] == ""  # no stamp, nothing clipped
            plain = browser.new_page(viewport={"width": 640, "height": 360})
            plain.goto(st.url + "/")
            assert plain.evaluate("() => getComputedStyle(document.querySelector('header')).display") != "none"
        finally:
            browser.close()
