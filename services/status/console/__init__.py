"""The operators' console: a few static pages and plain JavaScript modules (no build step) over
the status API of docs/contract.md section 7, served by the status service at /console/.

The browser holds the organisation's API token for its session only and sends it as the bearer
token; the pages never put it in a URL. Every console response carries a strict
Content-Security-Policy (see routes.py), and the scripts insert every text with textContent.
"""
