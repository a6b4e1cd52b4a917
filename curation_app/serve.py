"""Start the app's Streamlit server with every outbound lookup switched off.

``curate app`` execs ``python -m curation_app.serve run APP --server... ``:
this is ``streamlit run`` with one change made first, in the server process.
Streamlit 1.67 asks an external service for the machine's public IP
(``streamlit.net_util.get_external_ip``, an HTTP request to
checkip.amazonaws.com) whenever a WebSocket arrives from a foreign origin,
to see whether that origin is "this machine"; no configuration option turns
that off.  The app is bound to a local address and never needs either IP, so
both lookups answer "unknown" and the origin check falls back to localhost,
the bound address and ``server.allowedHosts``.  Usage statistics are off via
``browser.gatherUsageStats`` (config.toml and the command line).
"""

from __future__ import annotations

import sys


def disable_network_lookups() -> None:
    """Make Streamlit's IP auto-detection return None without touching the network."""
    from streamlit import net_util

    net_util.get_external_ip = lambda: None
    net_util.get_internal_ip = lambda: None  # a UDP "connect" to 8.8.8.8, only to read the local address


def main(argv: list[str] | None = None) -> None:
    disable_network_lookups()
    from streamlit.web import cli

    cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="streamlit")


if __name__ == "__main__":
    main()
