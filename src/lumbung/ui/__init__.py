"""The web dashboard and playground at ``/ui`` (docs/ui.md): HTML shells and hand-written scripts
served from the package itself (no CDN, no build step), over JSON and server-sent events from the
gateway, the engines and the store the rest of lumbung already keeps."""
