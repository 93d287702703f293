"""Writes deploy/demo/city.xlsx, the demo city's directory as a department head would fill it in.

Run: python deploy/demo/build_city.py  (the .xlsx is committed; this is how it was made)
"""

from pathlib import Path

from openpyxl import Workbook

SHEETS: dict[str, list[list[str]]] = {
    "people": [
        ["id", "name", "email", "department", "language", "manager"],
        ["elen.elaut", "Elen Elaut", "elen.elaut@demo.paraaf.be", "Secretariaat", "nl", ""],
        ["bart.baert", "Bart Baert", "bart.baert@demo.paraaf.be", "Bestuur", "nl", ""],
        ["sofie.smet", "Sofie Smet", "sofie.smet@demo.paraaf.be", "Bestuur", "nl", ""],
        ["marc.maes", "Marc Maes", "marc.maes@demo.paraaf.be", "Bestuur", "fr", ""],
        ["lies.leys", "Lies Leys", "lies.leys@demo.paraaf.be", "Bestuur", "nl", ""],
        ["ann.aerts", "Ann Aerts", "ann.aerts@demo.paraaf.be", "Secretariaat", "nl", ""],
        ["david.dewit", "David De Wit", "david.dewit@demo.paraaf.be", "Secretariaat", "en", ""],
        ["olga.omgeving", "Olga Oyen", "olga.oyen@demo.paraaf.be", "Omgeving", "nl", ""],
        ["pieter.peeters", "Pieter Peeters", "pieter.peeters@demo.paraaf.be", "Personeel", "nl", "hilde.hendrickx"],
        ["hilde.hendrickx", "Hilde Hendrickx", "hilde.hendrickx@demo.paraaf.be", "Personeel", "nl", ""],
        ["karel.claes", "Karel Claes", "karel.claes@demo.paraaf.be", "Personeel", "nl", "hilde.hendrickx"],
        ["oscar.olbrechts", "Oscar Olbrechts", "oscar.olbrechts@demo.paraaf.be", "OCMW", "fr", ""],
        ["iris.ilegems", "Iris Ilegems", "iris.ilegems@demo.paraaf.be", "ICT", "en", ""],
    ],
    "roles": [
        ["key", "title", "holders"],
        ["burgemeester", "burgemeester", "bart.baert"],
        ["schepen", "schepen", "sofie.smet, marc.maes, lies.leys"],
        ["algemeen-directeur", "algemeen directeur", "ann.aerts"],
        ["adjunct-directeur", "adjunct-algemeen directeur", "david.dewit"],
        ["diensthoofd-omgeving", "diensthoofd omgeving", "olga.omgeving"],
        ["hr-verantwoordelijke", "HR-verantwoordelijke", "pieter.peeters"],
        ["diensthoofd-personeel", "diensthoofd personeel", "hilde.hendrickx"],
        ["operator", "operator", "iris.ilegems"],  # sees every document's metadata and trail (never a confidential one's content)
        ["admin", "beheerder", "iris.ilegems"],  # registers absences for anyone
    ],
    "substitutes": [
        ["person", "substitutes"],
        ["bart.baert", "sofie.smet, marc.maes"],
        ["ann.aerts", "david.dewit"],
        ["sofie.smet", "marc.maes"],
        ["marc.maes", "sofie.smet"],
        ["david.dewit", "ann.aerts"],
    ],
    "absences": [
        ["person", "from", "to"],
        ["bart.baert", "2026-07-01", "2026-08-01"],
    ],
    "groups": [
        ["key", "departments", "shielded"],
        ["bestuur", "Bestuur, Secretariaat", "no"],
        ["omgeving", "Omgeving", "no"],
        ["personeel", "Personeel", "no"],
        ["ocmw", "OCMW", "yes"],
        ["tucht", "Personeel", "yes"],
    ],
}


def write(path: Path, sheets: dict[str, list[list[str]]] = SHEETS) -> Path:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


if __name__ == "__main__":
    print(write(Path(__file__).with_name("city.xlsx")))
