"""Headless Debian Chromium through Playwright, with the flags this sandbox needs."""

import contextlib
import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@contextlib.contextmanager
def chromium_page(output_dir, request=None, viewport=(1280, 900), *, session_cookie=None, base_url=None):
    """A fresh browser page; on a failing test a screenshot lands in output_dir.
    With ``session_cookie`` (and the ``base_url`` it belongs to) it starts signed in."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        if session_cookie:
            context.add_cookies([{"name": "sessionid", "value": session_cookie, "url": base_url}])
        page = context.new_page()
        page.set_default_timeout(20_000)
        console = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        try:
            yield page
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(output_dir / "failure.png"), full_page=True)
                (output_dir / "console.log").write_text("\n".join(console))
            raise
        finally:
            context.close()
            browser.close()
