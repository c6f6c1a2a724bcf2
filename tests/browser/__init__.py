"""Browser tests (Playwright driving Debian's Chromium) and the web-app harness they share."""
