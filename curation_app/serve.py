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

import os
import sys


def disable_network_lookups() -> None:
    """Make Streamlit's IP auto-detection return None without touching the network."""
    from streamlit import net_util

    net_util.get_external_ip = lambda: None
    net_util.get_internal_ip = lambda: None  # a UDP "connect" to 8.8.8.8, only to read the local address


def prewarm_when_ready(timeout_s: float = 60.0) -> None:
    """Once the server runs, fill the caches of the workdir's current run (curation_app/prewarm.py), so the
    first page a user opens does not pay for them.  A thread: the server starts as if this were not here."""
    import threading
    import time

    def wait_then_warm() -> None:
        from streamlit.runtime import Runtime

        deadline = time.monotonic() + timeout_s
        while not Runtime.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Runtime.exists():  # the caches belong to the runtime (st.cache_data): none, no warming
            from curation_app import prewarm

            prewarm.prewarm_current()

    threading.Thread(target=wait_then_warm, name="curate-prewarm-start", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    disable_network_lookups()
    if os.environ.get("CURATE_PREWARM", "1") != "0":  # prewarm.py: CURATE_PREWARM=0 switches it off
        prewarm_when_ready()
    from streamlit.web import cli

    cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="streamlit")


if __name__ == "__main__":
    main()
