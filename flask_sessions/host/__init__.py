"""The host: one asyncio loop owning Playwright, Chromium, the sessions and the reaper."""
