"""`GET /console`: the ops console, a static page of this package (no CDN, nothing
fetched from elsewhere at run time) that talks to the API and `/ws` of its own origin.

Its responses carry their own Content-Security-Policy: scripts, styles, images and
connections from the page's origin only (no inline script or style, no eval)."""
