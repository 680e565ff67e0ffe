"""English date formats of orthoreg (every en-* locale): day, abbreviated month, year, never ambiguous."""

DATE_FORMAT = "j M Y"  # 4 Dec 2026
DATETIME_FORMAT = "j M Y, H:i"  # 4 Dec 2026, 14:05
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
