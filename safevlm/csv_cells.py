"""Cells of the CSV files people open in a spreadsheet (the log's export, scan.csv): text
that a spreadsheet would run as a formula is neutralised. Plain strings in and out."""

# Spreadsheet apps run a cell starting with one of these as a formula (tab and CR too, after
# some apps strip them); prompts, file names and OCR text come from the public.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """`text` with an apostrophe in front when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
