"""Spreadsheet exports that cannot start a formula.

A CSV cell is text a spreadsheet may still read as a formula: a title such
as ``=HYPERLINK(...)`` runs for whoever opens the export. Every CSV this
project writes goes through :func:`csv_cell` (the library's listing, the
playback report, the analytics report); Wagtail already guards its XLSX
export (the cell is forced to a string), so only CSV needs this.

OWASP's rule: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading apostrophe, which spreadsheets show as text.
Real numbers (int, float, Decimal) are left as they are: ``-3`` is a number,
not a formula, and a spreadsheet should still add it up."""

from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """``value`` as a CSV cell no spreadsheet takes for a formula: numbers
    stay numbers, None is empty, anything else is text, with an apostrophe
    in front when it starts with one of FORMULA_STARTS."""
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)):  # bool included: True / False
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class CsvFormulaGuardMixin:
    """For a view with Wagtail's SpreadsheetExportMixin (IndexView,
    ReportView): every CSV cell goes through :func:`csv_cell` once Wagtail
    has preprocessed it. XLSX is untouched (Wagtail guards it)."""

    def write_csv_row(self, writer, row_dict):
        return writer.writerow(
            {
                field: csv_cell(self.preprocess_field_value(field, value, self.FORMAT_CSV))
                for field, value in row_dict.items()
            }
        )
