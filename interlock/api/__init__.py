"""The control plane: admin API, gateway contract endpoints, and the pieces ``interlock up`` embeds.

The gateway never imports this package: what it shares with the control plane is in ``interlock.contract``.
"""

from interlock.api.app import create_app, dispose_app
from interlock.api.crud.bootstrap import Bootstrap, ensure_bootstrap
from interlock.api.settings import ApiSettings
from interlock.db.migrate import migrate

__all__ = ["ApiSettings", "Bootstrap", "create_app", "dispose_app", "ensure_bootstrap", "migrate"]
