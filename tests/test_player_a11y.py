"""The player's accessibility in Chromium through the real stack: axe-core
(npm, tests/axe) finds no serious or critical violation on the player page
(menus closed and open, wide and phone-sized), a keyboard alone plays,
seeks, changes quality, captions and speed, with the focus always visible,
and at 360 px wide every control stays inside the player.

Screenshots for the README: `UPDATE_SCREENSHOTS=1 pytest tests/test_player_a11y.py`."""

import pytest

from .browser import chromium_page
from .stack import REPO
from .test_captions_browser import keep_screenshot, load_snapshot, open_player, prepare_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

AXE = REPO / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, django_db_blocker, stack):
    # Two rungs, so that the quality menu has a choice.
    return prepare_world(stack, tmp_path_factory, django_db_blocker, prefix="a11y", ladder=((180, 300), (90, 150)))


@pytest.fixture
def world(prepared, transactional_db):
    load_snapshot(prepared.snapshot)
    return prepared


def axe_violations(page):
    """Serious and critical axe-core violations on the whole page."""
    assert AXE.exists(), "axe-core is missing: make test-system-deps installs it (tests/axe)"
    if not page.evaluate("Boolean(window.axe)"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:5])
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


def video_state(page):
    return page.evaluate(
        "(() => { const v = document.querySelector('.video-player video');"
        " return {t: v.currentTime, paused: v.paused, rate: v.playbackRate, h: v.videoHeight}; })()"
    )


def focused(page):
    """The focused element's class and whether its focus is drawn (outline or ring)."""
    return page.evaluate(
        """() => { const e = document.activeElement; const s = getComputedStyle(e);
          return {cls: e.className, label: e.getAttribute('aria-label') || e.textContent.trim(),
                  visible: e.matches(':focus-visible') && (
                    (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none')}; }"""
    )


def tab_to(page, css, limit=25):
    for _ in range(limit):
        page.keyboard.press("Tab")
        state = focused(page)
        if page.evaluate("c => document.activeElement.matches(c)", css):
            assert state["visible"], state
            return state
        assert state["visible"] or state["cls"] == "", state
    raise AssertionError(f"Tab never reached {css}")


def test_axe_finds_no_serious_or_critical_violation(stack, world, output_dir):
    with chromium_page(output_dir, viewport=(1024, 768)) as page:
        open_player(page, stack, world, "hlsjs")
        page.wait_for_function("!document.querySelector('.video-player__quality-wrap').hidden")
        assert axe_violations(page) == []
        # Each menu open in turn: its items are checked too.
        for name in ("captions", "quality", "speed", "chapters"):
            page.locator(f".video-player__{name}").click()
            assert page.locator(f".video-player__{name}-wrap .video-player__popup").is_visible()
            assert axe_violations(page) == [], name
            page.keyboard.press("Escape")
    with chromium_page(output_dir, viewport=(360, 740)) as page:
        open_player(page, stack, world, "hlsjs")
        assert axe_violations(page) == []


def test_keyboard_alone_plays_seeks_and_changes_quality_captions_and_speed(stack, world, output_dir):
    with chromium_page(output_dir, viewport=(800, 600)) as page:
        open_player(page, stack, world, "hlsjs")
        page.wait_for_function("!document.querySelector('.video-player__quality-wrap').hidden")
        # Every control has a name.
        unnamed = page.evaluate(
            "Array.from(document.querySelectorAll('.video-player button, .video-player [role=slider]'))"
            ".filter(e => !(e.getAttribute('aria-label') || e.textContent.trim())).map(e => e.outerHTML)"
        )
        assert unnamed == []

        # Play with Enter on the play button.
        tab_to(page, ".video-player__play")
        page.keyboard.press("Enter")
        page.wait_for_function("!document.querySelector('.video-player video').paused")
        page.wait_for_function("document.querySelector('.video-player video').currentTime > 0.3")

        # Seek: the slider takes the arrows (5 s), Home goes back to the start.
        tab_to(page, ".video-player__scrub")
        before = video_state(page)["t"]
        page.keyboard.press("ArrowRight")
        page.wait_for_function("t => document.querySelector('.video-player video').currentTime > t + 4", arg=before)
        assert page.locator(".video-player__scrub").get_attribute("aria-valuetext").endswith("Vert")
        page.keyboard.press("Home")
        page.wait_for_function("document.querySelector('.video-player video').currentTime < 2")
        # Space pauses (k would too).
        page.keyboard.press("Space")
        page.wait_for_function("document.querySelector('.video-player video').paused")

        # Quality: Enter opens the menu on the checked item; arrows and Enter pick 90p.
        tab_to(page, ".video-player__quality")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.dataset.quality") == "Auto"
        assert focused(page)["visible"]
        page.keyboard.press("ArrowUp")
        assert page.evaluate("document.activeElement.dataset.quality") == "90p"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.classList.contains('video-player__quality')")
        assert page.locator(".video-player__menu").is_hidden()
        page.keyboard.press("Space")  # on the quality button: opens it again
        page.keyboard.press("Escape")
        assert page.locator(".video-player__menu").is_hidden()
        page.keyboard.press("k")
        page.wait_for_function("document.querySelector('.video-player video').videoHeight === 90", timeout=15_000)
        assert page.locator(".video-player__quality").inner_text() == "90p"

        # Captions: from French (the default) to Arabic, then off with c.
        page.keyboard.press("Shift+Tab")  # the CC button comes just before Quality (no audio menu here)
        assert page.evaluate("document.activeElement.classList.contains('video-player__captions')")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.dataset.caption") == "fr"
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('.video-player').dataset.captions === 'ar'")
        page.wait_for_function(
            "Array.from(document.querySelector('.video-player video').textTracks)"
            ".some(t => t.language === 'ar' && t.mode === 'showing')"
        )
        page.keyboard.press("c")
        page.wait_for_function("document.querySelector('.video-player').dataset.captions === 'off'")

        # Speed: 1.5x from its menu, then back down with "<".
        tab_to(page, ".video-player__speed")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.dataset.speed") == "1"
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement.dataset.speed") == "1.5"
        page.keyboard.press("Space")
        assert video_state(page)["rate"] == 1.5
        assert page.locator(".video-player__speed").inner_text() == "1.5×"
        page.keyboard.press("<")
        assert video_state(page)["rate"] == 1.25

        # Chapters by key: n jumps to the next one.
        page.keyboard.press("Home")
        page.keyboard.press("n")
        page.wait_for_function("Math.abs(document.querySelector('.video-player video').currentTime - 4.5) < 0.2")
        page.locator(".video-player").screenshot(path=str(output_dir / "player-keyboard.png"))


def test_player_fits_a_360px_phone_screen(stack, world, output_dir):
    with chromium_page(output_dir, viewport=(360, 740)) as page:
        open_player(page, stack, world, "hlsjs")
        page.wait_for_function("!document.querySelector('.video-player__quality-wrap').hidden")
        # Nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        stage = page.locator(".video-player__stage").bounding_box()
        assert stage["width"] <= 360

        def outside(selector):
            return page.evaluate(
                """([selector, s]) => Array.from(document.querySelectorAll(selector))
                  .filter(e => e.getClientRects().length)
                  .map(e => [e.className, e.getBoundingClientRect().toJSON()])
                  .filter(([, r]) => r.left < s.x - 0.5 || r.right > s.x + s.width + 0.5
                                     || r.top < s.y - 0.5 || r.bottom > s.y + s.height + 0.5)""",
                [selector, stage],
            )

        controls = ".video-player__controls button, .video-player__scrub"
        assert outside(controls) == []
        # Buttons big enough to hit with a finger (WCAG 2.2 target size minimum, 24 px).
        small = page.evaluate(
            """() => Array.from(document.querySelectorAll('.video-player__controls button'))
              .filter(e => e.getClientRects().length).map(e => e.getBoundingClientRect())
              .filter(r => r.width < 24 || r.height < 24).length"""
        )
        assert small == 0
        # Each menu opens inside the player too.
        for name in ("captions", "quality", "speed", "chapters"):
            page.locator(f".video-player__{name}").click()
            assert outside(f".video-player__{name}-wrap .video-player__popup") == [], name
            if name == "captions":
                page.locator(".video-player").screenshot(path=str(output_dir / "player-phone-captions.png"))
            page.keyboard.press("Escape")
    keep_screenshot(output_dir / "player-phone-captions.png", "player-phone-captions.png")
