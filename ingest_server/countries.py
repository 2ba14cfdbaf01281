"""The country of a client IP, from a MaxMind-format database (GeoLite2-Country, DB-IP's
lite country database, or any `.mmdb` whose records hold `country.iso_code`), when
GEOIP_DATABASE names one. The file is memory-mapped: a lookup reads memory, no disk I/O on the
event loop once the pages are warm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import maxminddb


class Countries:
    def __init__(self, path: Path) -> None:
        self._reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP)

    def country(self, ip: str) -> str:
        """The ISO 3166-1 alpha-2 code, "" when the database knows none."""
        try:
            record: Any = self._reader.get(ip)
        except ValueError:  # not an IP address, or IPv6 in an IPv4-only database
            return ""
        if not isinstance(record, dict):
            return ""
        country = record.get("country")
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) else ""

    def close(self) -> None:
        self._reader.close()
