"""Cases, enforcement documents and the footage linked to them (R5, R6, R7), with compliance flags."""
