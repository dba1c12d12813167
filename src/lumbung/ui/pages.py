"""The pages: one HTML shell each (navigation, the login form, the page's own body from
``assets/PAGE.html``), carrying no data. Each page's script asks the JSON and event endpoints
(ui/routes.py) with the operator key the login form keeps in ``sessionStorage``."""

from __future__ import annotations

from html import escape

from lumbung.ui.static import assets, fragment

# (path under /ui, title); the order of the navigation.
PAGES = (
    ("overview", "Overview"),
    ("models", "Models"),
    ("playground", "Playground"),
    ("usage", "Usage"),
    ("keys", "Keys"),
    ("reports", "Reports"),
)


def render(page: str) -> str:
    title = dict(PAGES)[page]
    files = assets()
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="/ui/{name}"{current if name == page else ""}>{escape(label)}</a></li>'
        for name, label in PAGES
    )
    scripts = "".join(
        f'<script src="{files[f].url}" defer></script>' for f in ("ui.js", f"{page}.js") if f in files
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · lumbung</title>
<link rel="stylesheet" href="{files["ui.css"].url}">
<link rel="icon" href="{files["icon.svg"].url}">
{scripts}
</head>
<body data-page="{page}">
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">lumbung</span>
<nav aria-label="Pages"><ul>{links}</ul></nav>
<button type="button" id="logout" hidden>Log out</button>
</header>
<main id="main" tabindex="-1">
<h1>{escape(title)}</h1>
<form id="login" hidden>
<p>This server has keys configured. Log in with an operator key (it is kept in this tab only, until
the tab closes).</p>
<label for="login-key">Operator key</label>
<input id="login-key" name="key" type="password" autocomplete="off" required>
<button type="submit">Log in</button>
<p id="login-error" role="alert"></p>
</form>
<div id="page" hidden>
{fragment(page)}
</div>
</main>
</body>
</html>
"""
