"""The browser fixtures shared by the browser tests."""

from tests.browser.test_browser_flow import browser  # noqa: F401  (the `browser` fixture)
