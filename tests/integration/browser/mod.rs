//! The Admin UI in a real headless Chromium driven over WebDriver (Debian's chromium and
//! chromium-driver, which scripts/test installs).

mod walk;
mod webdriver;
