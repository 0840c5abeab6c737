"""Hand-edited label files: numbers in unexpected forms stop with file and line named, the
accepted variants (header, BOM, CRLF, separators) read, and one media path has one spelling."""

from __future__ import annotations

import pytest

from preresq.data.benchmarks import card_from_config, read_benchmark
from preresq.data.readers import read_koniq_csv, read_label_list, read_spaq_xlsx
from preresq.data.records import normalise_path
from preresq.data.tables import to_float


def _card(labels, reader="label_list", **kw):
    return card_from_config({"name": "fixture", "modality": "image", "media_root": "/media",
                             "labels": str(labels), "reader": reader, **kw})


SPACES, COMMAS = "a.png 4.1 0.5", "a.png, 4.1"  # the first line sets the file's separator


@pytest.mark.parametrize("first, line, message", [
    (SPACES, "b.png 3,9", r"mixes spaces and commas; a decimal comma"),
    (SPACES, "b.png\t3,9\t0,5", r"mixes spaces and commas; a decimal comma"),
    (SPACES, "b.png 3.9%", r"expected a number, got '3.9%'"),
    (SPACES, "b.png 3.9 MOS", r"expected a number, got 'MOS'"),
    (SPACES, "b.png NaN", r"score is not finite"),
    (SPACES, "b.png -inf", r"score is not finite"),
    (SPACES, "b.png 3_9", r"expected a number, got '3_9'"),
    (SPACES, "b.png", r"expected `name score \[std\]`"),
    (SPACES, "b.png 3.9 0.4 1", r"too many fields"),
    (COMMAS, "b.png,3,9", r"3 fields .* but the file.s lines have 2 \(a decimal comma"),
    (COMMAS, "b.png, 3 9", r"mixes spaces and commas"),
    (COMMAS, "b.png,", r"empty field"),
    (COMMAS, "b.png,,4.0", r"empty field"),
    (COMMAS, "b.png 3.9", r"separated by spaces, but the file uses commas"),
])
def test_bad_lines_stop_with_file_and_line(tmp_path, first, line, message):
    f = tmp_path / "GT.txt"
    f.write_text(f"{first}\n{line}\n")
    with pytest.raises(ValueError, match=rf"GT\.txt:2: .*{message}"):
        read_label_list(f)


def test_decimal_comma_has_a_hint_in_every_table():
    with pytest.raises(ValueError, match=r"f:3: .*'3,9' \(a decimal comma\? write 3.9"):
        to_float("3,9", "f:3")
    for bad in ("", " ", "True", "4.0.1", "3 9", "1e", "0x10"):
        with pytest.raises(ValueError, match="f:3: expected a number"):
            to_float(bad, "f:3")
    with pytest.raises(ValueError, match="expected a number, got True"):
        to_float(True, "f:3")  # a spreadsheet's TRUE is not a score of 1
    assert [to_float(v, "f") for v in (" 3.9 ", "-1", "+.5", "4e-1", "7.", 3, 2.5)] == \
        [3.9, -1.0, 0.5, 0.4, 7.0, 3.0, 2.5]


def test_csv_and_xlsx_readers_refuse_decimal_commas(tmp_path):
    f = tmp_path / "koniq.csv"
    f.write_text('image_name,MOS,SD\na.jpg,3.5,0.4\nb.jpg,"3,9",0.5\n')
    with pytest.raises(ValueError, match=r"koniq\.csv:3: expected a number, got '3,9'"):
        read_koniq_csv(f)
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Image name", "MOS"])
    book.active.append(["00001.jpg", 50.5])
    book.active.append(["00002.jpg", "62,3"])
    book.save(tmp_path / "spaq.xlsx")
    with pytest.raises(ValueError, match=r"spaq\.xlsx: row 3: expected a number, got '62,3'"):
        read_spaq_xlsx(tmp_path / "spaq.xlsx")


def test_accepted_variants_read_the_same(tmp_path):
    plain = [("a.png", 4.1, 0.5), ("sub/b.png", 2.0, 0.25)]
    variants = {
        "spaces.txt": "a.png 4.1 0.5\nsub/b.png 2.0 0.25\n",
        "tabs.txt": "a.png\t4.1\t0.5\n\nsub/b.png\t2.0\t0.25",
        "commas.txt": "a.png,4.1,0.5\nsub/b.png, 2.0 ,0.25\n",
        "crlf_bom.txt": "\ufeffa.png 4.1 0.5\r\nsub/b.png 2.0 0.25\r\n",
        "header.txt": "name,mos,std\r\na.png,4.1,0.5\r\nsub/b.png,2.0,0.25\r\n",
        "windows.txt": "\ufeffname mos std\r\na.png 4.1 0.5\r\nsub\\b.png 2.0 0.25\r\n",
    }
    for name, text in variants.items():
        (tmp_path / name).write_bytes(text.encode("utf-8"))
        records = read_benchmark(_card(tmp_path / name, score_range=[1, 5]))
        assert [(r.id, r.mos, r.std) for r in records] == plain, name
        assert [r.paths for r in records] == [["a.png"], ["sub/b.png"]], name


def test_names_are_normalised_before_the_duplicate_check(tmp_path):
    f = tmp_path / "GT.txt"
    f.write_text("a.png 4.1\nsub//b.png 3.0\n./a.png 2.0\nsub\\b.png 1.5\nc.png 1.0\n")
    with pytest.raises(ValueError, match=r"2 items appear more than once .*a\.png at "
                                         r".*GT\.txt:1, .*GT\.txt:3; sub/b\.png at .*GT\.txt:2, .*GT\.txt:4"):
        read_benchmark(_card(f))
    f.write_text("./a.png 4.1\nx/../b.png 3.0\n")
    assert [r.id for r in read_benchmark(_card(f))] == ["a.png", "b.png"]


def test_a_path_leaving_the_media_root_is_refused(tmp_path):
    f = tmp_path / "GT.txt"
    f.write_text("a.png 4.1\n../secret.png 3.0\n")
    with pytest.raises(ValueError, match=r"GT\.txt:2: media path '\.\./secret\.png' .*leaves the media root"):
        read_benchmark(_card(f))
    with pytest.raises(ValueError, match="leaves the media root"):
        normalise_path("/abs/a.png", "x")
    assert normalise_path("TID/I01_01_1.bmp", "x") != normalise_path("TID/i01_01_1.bmp", "x")


def test_csv_variants_on_the_cards_read_the_same(tmp_path):
    plain = [("a.jpg", 3.5, 0.4), ("b.jpg", 2.0, 0.5)]
    variants = {
        "plain.csv": "image_name,MOS,SD\na.jpg,3.5,0.4\nb.jpg,2.0,0.5\n",
        "excel.csv": '\ufeff"Image_Name", "mos" ,"SD",extra\r\n"a.jpg",3.5,0.4,x\r\n\r\nb.jpg, 2.0 ,0.5,y\r\n',
    }
    for name, text in variants.items():
        (tmp_path / name).write_bytes(text.encode("utf-8"))
        assert [(r.name, r.mos, r.std) for r in read_koniq_csv(tmp_path / name)] == plain, name
    (tmp_path / "semi.csv").write_text("image_name;MOS;SD\na.jpg;3,5;0,4\n")
    with pytest.raises(ValueError, match=r"semi\.csv:1: no column .*semicolon-separated"):
        read_koniq_csv(tmp_path / "semi.csv")
