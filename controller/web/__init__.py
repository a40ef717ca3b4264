"""The web page at `/`: sign-in, sessions with CSRF, server-rendered fragments and vendored assets."""
