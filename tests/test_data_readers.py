"""Readers of the official label formats, on small files built in each format."""

from __future__ import annotations

import math

import numpy as np
import pytest

from preresq.data.benchmarks import card_from_config, read_benchmark
from preresq.data.readers import READERS, get_reader, read_label_list


def _card(labels, reader, **kw):
    cfg = {"name": "fixture", "modality": kw.pop("modality", "image"), "media_root": "/media",
           "labels": str(labels), "reader": reader}
    cfg.update(kw)
    return card_from_config(cfg)


def _xlsx(path, header, rows, sheet=None, extra_sheets=()):
    from openpyxl import Workbook

    book = Workbook()
    for name in extra_sheets:  # sheets before the wanted one, so the reader must pick by name
        book.create_sheet(name).append(["unrelated"])
    ws = book.active if sheet is None else book.create_sheet(sheet)
    ws.append(header)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def test_registry_names_every_official_format():
    assert {"label_list", "koniq_csv", "kadid_csv", "spaq_xlsx", "tid2013_txt", "clive_mat",
            "agiqa3k_csv", "bid_xlsx", "pipal_txt", "lsvq_csv", "konvid_csv", "livevqc_mat",
            "youtube_ugc_xlsx", "demo_set"} <= set(READERS)
    with pytest.raises(KeyError, match="unknown label reader 'nope'"):
        get_reader("nope")


# --------------------------------------------------------------------------- label lists


def test_label_list_layouts(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("a.jpg 4.5 0.3\nb.jpg 1.0 0.2\n\n")
    rows = read_label_list(f)
    assert [(r.name, r.mos, r.std, r.ref, r.line) for r in rows] == [
        ("a.jpg", 4.5, 0.3, None, 1), ("b.jpg", 1.0, 0.2, None, 2)]
    f.write_text("ref.png d1.png 4.0\nref.png d2.png 2.0\n")
    assert [(r.ref, r.name, r.mos) for r in read_label_list(f)] == [
        ("ref.png", "d1.png", 4.0), ("ref.png", "d2.png", 2.0)]
    f.write_text("KoNViD_1k_videos/1.mp4, 3.22\nVideo/A001.mp4,4.3616\n")
    assert [(r.name, r.mos) for r in read_label_list(f)] == [
        ("KoNViD_1k_videos/1.mp4", 3.22), ("Video/A001.mp4", 4.3616)]


def test_label_list_errors_name_file_and_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("a.jpg 4.5\nref.jpg b.jpg 4.0\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: line has layout ref_dist_score"):
        read_label_list(f)
    f.write_text("a.jpg 4.5\nb.jpg oops\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected a number, got 'oops'"):
        read_label_list(f)
    f.write_text("a.jpg 4.5\nb.jpg nan\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: score is not finite"):
        read_label_list(f)
    with pytest.raises(FileNotFoundError, match="label file not found"):
        read_label_list(tmp_path / "missing.txt")


def test_rescale_min_max_and_dmos_flip(tmp_path):
    f = tmp_path / "dmos.txt"
    f.write_text("a.png 10\nb.png 30\nc.png 20\n")
    up = read_benchmark(_card(f, "label_list"))
    assert [r.score for r in up] == [1.0, 5.0, 3.0]
    assert [r.mos for r in up] == [10.0, 30.0, 20.0]  # raw score kept as in the file
    down = read_benchmark(_card(f, "label_list", higher_is_better=False))
    assert [r.score for r in down] == [5.0, 1.0, 3.0]
    fixed = read_benchmark(_card(f, "label_list", score_range=[0, 40]))
    assert [r.score for r in fixed] == [2.0, 4.0, 3.0]
    with pytest.raises(ValueError, match="outside the card's score_range"):
        read_benchmark(_card(f, "label_list", score_range=[0, 25]))


def test_repeated_items_are_an_error(tmp_path):
    f = tmp_path / "rep.txt"
    f.write_text("a.png 1\na.png 2\n")
    with pytest.raises(ValueError, match="appear more than once"):
        read_benchmark(_card(f, "label_list"))


# --------------------------------------------------------------------------- IQA releases


def test_koniq_csv(tmp_path):
    f = tmp_path / "koniq10k_scores_and_distributions.csv"
    f.write_text('"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"\n'
                 '"10004473376.jpg",0,0,25,73,7,105,3.828571429,0.527277894,77.38513424\n'
                 '"10007357496.jpg",0,3,45,47,1,96,3.479166667,0.580003025,68.51593053\n'
                 '"1000.jpg",10,80,5,0,0,95,1.096,0.4,1.0\n')
    records = read_benchmark(_card(f, "koniq_csv"))
    assert [r.id for r in records] == ["10004473376.jpg", "10007357496.jpg", "1000.jpg"]
    assert records[0].mos == pytest.approx(3.828571429) and records[0].std == pytest.approx(0.527277894)
    assert records[0].score == 5.0 and records[2].score == 1.0
    assert records[1].score == pytest.approx(1 + 4 * (3.479166667 - 1.096) / (3.828571429 - 1.096))


def test_kadid_dmos_csv_is_higher_is_better(tmp_path):
    f = tmp_path / "dmos.csv"
    f.write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\n"
                 "I01_01_05.png,I01.png,1.00,0.0\nI02_01_01.png,I02.png,4.93,0.25\n")
    records = read_benchmark(_card(f, "kadid_csv"))
    assert [(r.id, r.ref) for r in records] == [("I01_01_01.png", "I01.png"), ("I01_01_05.png", "I01.png"),
                                                ("I02_01_01.png", "I02.png")]
    assert records[2].score == 5.0 and records[1].score == 1.0  # high dmos = good
    assert records[0].std == pytest.approx(math.sqrt(0.496))


def test_spaq_xlsx(tmp_path):
    f = _xlsx(tmp_path / "MOS and Image attribute scores.xlsx",
              ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"],
              [["00001.jpg", 42.25, 1, 2, 3, 4, 5], ["00002.jpg", 82.0, 1, 2, 3, 4, 5],
               ["00003.jpg", 2.5, 1, 2, 3, 4, 5]])
    records = read_benchmark(_card(f, "spaq_xlsx"))
    assert [r.id for r in records] == ["00001.jpg", "00002.jpg", "00003.jpg"]
    assert [r.score for r in records] == pytest.approx([3.0, 5.0, 1.0])
    assert records[0].extra["label_line"] == 2  # the spreadsheet row


def test_tid2013_txt_with_std(tmp_path):
    (tmp_path / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n0.24 i01_01_5.bmp\n7.21429 I25_02_1.bmp\n")
    (tmp_path / "mos_std.txt").write_text("0.1\n0.2\n0.3\n")
    records = read_benchmark(_card(tmp_path / "mos_with_names.txt", "tid2013_txt",
                                   reader_args={"std_file": "mos_std.txt"}))
    assert [(r.id, r.ref, r.std) for r in records] == [
        ("i01_01_1.bmp", "I01.BMP", 0.1), ("i01_01_5.bmp", "I01.BMP", 0.2), ("I25_02_1.bmp", "I25.BMP", 0.3)]
    assert records[2].score == 5.0 and records[1].score == 1.0


def test_clive_mat(tmp_path):
    from scipy.io import savemat

    names = np.empty((4, 1), dtype=object)
    names[:, 0] = ["t1.bmp", "t2.bmp", "10.bmp", "100.bmp"]
    savemat(tmp_path / "AllImages_release.mat", {"AllImages_release": names})
    savemat(tmp_path / "AllMOS_release.mat", {"AllMOS_release": np.array([[50.0, 3.42, 92.4, 60.0]])})
    records = read_benchmark(_card(tmp_path / "AllMOS_release.mat", "clive_mat"))
    assert [r.id for r in records] == ["trainingImages/t1.bmp", "trainingImages/t2.bmp", "10.bmp", "100.bmp"]
    assert records[1].score == 1.0 and records[2].score == 5.0
    flat = read_benchmark(_card(tmp_path / "AllMOS_release.mat", "clive_mat",
                                reader_args={"practice_dir": None}))
    assert flat[0].id == "t1.bmp"


def test_agiqa3k_csv_quoted_prompts(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"
                 'AttnGAN_normal_000.jpg,"a dog, running",,,baroque,1.2,0.5,2.0,0.4\n'
                 "AttnGAN_normal_001.jpg,a cat,,,,3.4,0.6,2.5,0.3\n"
                 "midjourney_lowstep_099.jpg,a cup,,,,4.2,0.2,4.0,0.1\n")
    records = read_benchmark(_card(f, "agiqa3k_csv"))
    assert [r.id for r in records] == ["AttnGAN_normal_000.jpg", "AttnGAN_normal_001.jpg",
                                       "midjourney_lowstep_099.jpg"]
    assert [r.mos for r in records] == [1.2, 3.4, 4.2]  # mos_quality, not mos_align
    assert records[0].std == 0.5 and records[0].score == 1.0 and records[2].score == 5.0


def test_bid_xlsx_stops_at_the_end_of_the_table(tmp_path):
    f = _xlsx(tmp_path / "DatabaseGrades.xlsx", ["Image Number", "Average Subjective Grade"],
              [[1, 4.31], [3, 0.93], [4, 2.5], [None, None], ["Note: grades 0-5", None]])
    records = read_benchmark(_card(f, "bid_xlsx"))
    assert [r.id for r in records] == ["DatabaseImage0001.JPG", "DatabaseImage0003.JPG",
                                       "DatabaseImage0004.JPG"]
    assert records[0].score == 5.0 and records[1].score == 1.0


def test_pipal_folder_of_label_txts(tmp_path):
    labels = tmp_path / "Train_Label"
    labels.mkdir()
    (labels / "A0002.txt").write_text("A0002_00_00.bmp,1500.0\nA0002_00_01.bmp,1000.0\n")
    (labels / "A0001.txt").write_text("A0001_00_00.bmp,1446.4301\nA0001_10_03.bmp,1250.0\n")
    records = read_benchmark(_card(labels, "pipal_txt"))
    assert [(r.id, r.ref) for r in records] == [
        ("A0001_00_00.bmp", "A0001.bmp"), ("A0001_10_03.bmp", "A0001.bmp"),
        ("A0002_00_00.bmp", "A0002.bmp"), ("A0002_00_01.bmp", "A0002.bmp")]
    assert records[2].score == 5.0 and records[3].score == 1.0
    assert records[3].extra["label_file"] == "A0002.txt" and records[3].extra["label_line"] == 2
    one = read_benchmark(_card(labels / "A0001.txt", "pipal_txt"))
    assert len(one) == 2


# --------------------------------------------------------------------------- VQA releases


def test_lsvq_csv_subsets(tmp_path):
    f = tmp_path / "labels_train_test.csv"
    f.write_text("name,p1,p2,p3,height,width,mos_p1,mos_p2,mos_p3,mos,is_test\n"
                 "ia-batch1/a,1,2,3,720,1280,50,50,50,60.5,False\n"
                 "ia-batch1/b,1,2,3,720,1280,50,50,50,20.5,False\n"
                 "yfcc-batch1/747,1,2,3,720,1280,50,50,50,72.0,True\n"
                 "yfcc-batch1/752,1,2,3,720,1280,50,50,50,30.0,True\n"
                 "yfcc-batch1/749,1,2,3,720,1280,50,50,50,51.0,True\n")
    test = read_benchmark(_card(f, "lsvq_csv", modality="video", reader_args={"subset": "test"}))
    assert [r.id for r in test] == ["yfcc-batch1/747.mp4", "yfcc-batch1/752.mp4", "yfcc-batch1/749.mp4"]
    assert [r.score for r in test] == pytest.approx([5.0, 1.0, 1 + 4 * 21 / 42])  # min-max over the test rows
    assert all(r.modality == "video" for r in test)
    train = read_benchmark(_card(f, "lsvq_csv", modality="video", reader_args={"subset": "train"}))
    assert [r.id for r in train] == ["ia-batch1/a.mp4", "ia-batch1/b.mp4"]
    f1080 = tmp_path / "labels_test_1080p.csv"
    f1080.write_text("name,height,width,mos,frame_number\nyfcc-batch1/722,1080,1920,80.1,240\n"
                     "yfcc-batch1/724,1080,1920,20.0,240\n")
    assert len(read_benchmark(_card(f1080, "lsvq_csv", modality="video"))) == 2
    with pytest.raises(ValueError, match="no column 'is_test'"):
        read_benchmark(_card(f1080, "lsvq_csv", modality="video", reader_args={"subset": "test"}))


def test_konvid_csv(tmp_path):
    f = tmp_path / "KoNViD_1k_mos.csv"
    f.write_text("flickr_id,mos\n4542323058,3.22\n9753414792,4.64\n6935410837,1.22\n")
    records = read_benchmark(_card(f, "konvid_csv", modality="video"))
    assert [r.id for r in records] == ["4542323058.mp4", "9753414792.mp4", "6935410837.mp4"]
    assert [r.score for r in records] == pytest.approx([1 + 4 * 2.0 / 3.42, 5.0, 1.0])


def test_livevqc_mat(tmp_path):
    from scipy.io import savemat

    names = np.empty((3, 1), dtype=object)
    names[:, 0] = ["A001.mp4", "A002.mp4", "B104.mp4"]
    savemat(tmp_path / "data.mat", {"video_list": names, "mos": np.array([[80.2], [41.5], [6.2]])})
    records = read_benchmark(_card(tmp_path / "data.mat", "livevqc_mat", modality="video"))
    assert [r.id for r in records] == ["A001.mp4", "A002.mp4", "B104.mp4"]
    assert records[0].score == 5.0 and records[2].score == 1.0


def test_youtube_ugc_xlsx_reads_the_mos_sheet(tmp_path):
    f = _xlsx(tmp_path / "original_videos_MOS_for_YouTube_UGC_dataset.xlsx",
              ["vid", "category", "resolution", "MOS full", "MOS chunk00"],
              [["Sports_2160P-4e9f", "Sports", "2160P", 4.405, 4.0],
               ["Animation_480P-7a31", "Animation", "480P", 3.487, 3.0],
               ["Vlog_360P-1234", "Vlog", "360P", 1.242, 1.0]],
              sheet="MOS", extra_sheets=["diff2"])
    records = read_benchmark(_card(f, "youtube_ugc_xlsx", modality="video"))
    assert [r.id for r in records] == ["Sports_2160P-4e9f.mkv", "Animation_480P-7a31.mkv", "Vlog_360P-1234.mkv"]
    assert records[0].score == 5.0 and records[2].score == 1.0
    assert records[1].extra["category"] == "Animation"
    mp4 = read_benchmark(_card(f, "youtube_ugc_xlsx", modality="video", reader_args={"suffix": ".mp4"}))
    assert mp4[0].id == "Sports_2160P-4e9f.mp4"
