"""The hub's web face: 360° profile pages, a read-only JSON API and WeCom's callback receiver.

An entry layer like the CLI: it may import connectors' receivers, the core may not
import it. :func:`create_web_app` builds the ASGI app; :func:`serve` runs it.
"""

from hub.web.app import create_web_app
from hub.web.server import serve

__all__ = ["create_web_app", "serve"]
