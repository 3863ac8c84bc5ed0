"""Named loggers, one per subsystem."""

import logging

access_logger = logging.getLogger("edgecache.access")
origin_logger = logging.getLogger("edgecache.origin")
cache_logger = logging.getLogger("edgecache.cache")
admin_logger = logging.getLogger("edgecache.admin")
server_logger = logging.getLogger("edgecache.server")
inventory_logger = logging.getLogger("edgecache.inventory")

