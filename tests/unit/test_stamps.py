"""What a signature stamp says and where it lands (pure rules)."""

from datetime import UTC, datetime

from services.signer.stamps import STAMP_HEIGHT, STAMP_WIDTH, bottom_box, on_behalf_text, placeholder_box, stamp_text
from shared.events import PersonRef

A4 = (0.0, 0.0, 595.0, 842.0)
SOFIE = PersonRef(id="sofie.smet", name="Sofie Smet", title="schepen")
BART = PersonRef(id="bart.baert", name="Bart Baert", title="burgemeester")


def test_a_substitute_stamp_names_the_signer_their_function_and_wnd_the_function_they_stand_in_for() -> None:
    """A schepen signing for the absent mayor gets "wnd. burgemeester" under her own name and function."""
    text = stamp_text(SOFIE, BART, datetime(2026, 7, 14, 9, 30, tzinfo=UTC), "Europe/Brussels")
    assert text.splitlines()[1:4] == ["Sofie Smet", "schepen", "wnd. burgemeester"]


def test_the_stamp_shows_brussels_time_in_summer_and_in_winter() -> None:
    """09:30 UTC is 11:30 CEST in July and 10:30 CET in January."""
    summer = stamp_text(SOFIE, None, datetime(2026, 7, 14, 9, 30, tzinfo=UTC), "Europe/Brussels")
    winter = stamp_text(SOFIE, None, datetime(2026, 1, 14, 9, 30, tzinfo=UTC), "Europe/Brussels")
    assert summer.splitlines()[-1] == "14-07-2026 11:30 CEST"
    assert winter.splitlines()[-1] == "14-01-2026 10:30 CET"


def test_a_french_speaking_signer_gets_a_french_stamp() -> None:
    """The stamp speaks the signer's language: "Signé numériquement par" and "p.o."."""
    marc = PersonRef(id="marc.maes", name="Marc Maes", title="schepen", language="fr")
    text = stamp_text(marc, BART, datetime(2026, 7, 14, 9, 30, tzinfo=UTC), "Europe/Brussels")
    assert text.startswith("Signé numériquement par\nMarc Maes")
    assert "p.o. burgemeester" in text


def test_the_reason_names_who_was_stood_in_for() -> None:
    """The signature's reason reads "wnd. burgemeester (Bart Baert)", which the verification report shows."""
    assert on_behalf_text(BART) == "wnd. burgemeester (Bart Baert)"


def test_stamps_fill_the_bottom_of_the_page_left_to_right_then_upwards_without_overlapping() -> None:
    """Five stamps on A4: three fit on a row, the fourth starts a row above; none overlap or leave the page."""
    boxes = [bottom_box(A4, i) for i in range(5)]
    assert [b[1] for b in boxes[:3]] == [boxes[0][1]] * 3
    assert boxes[3][1] > boxes[0][3] and boxes[3][0] == boxes[0][0]
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= 595 and 0 <= a[1] and a[3] <= 842
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_a_stamp_on_a_placeholder_near_the_page_edge_stays_on_the_page() -> None:
    """A [SIG01] in the bottom-right corner still gets a whole stamp, moved inside the page."""
    llx, lly, urx, ury = placeholder_box(A4, left=560, top=20)
    assert (urx - llx, ury - lly) == (STAMP_WIDTH, STAMP_HEIGHT)
    assert llx >= 0 and lly >= 0 and urx <= 595 and ury <= 842
