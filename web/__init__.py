"""The station's HTTP side: status API now; the custodian UI and API grow here."""
