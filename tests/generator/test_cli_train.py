"""`mrgen-nnunet train ...`: config file + flags reach the stage; bad input is one line, exit ≠ 0."""

from __future__ import annotations

from mrgen_nnunet.cli.main import main


def test_train_autoencoder_from_toml_config(synthetic_index, tmp_path, capsys):
    cfg = tmp_path / "vae.toml"
    cfg.write_text('steps = 2\nbatch_size = 2\nresolution = 32\nquiet = true\n')
    assert main(["train", "autoencoder", "--index", str(synthetic_index), "--out", str(tmp_path / "g"),
                 "--config", str(cfg), "--seed", "1"]) == 0
    assert list((tmp_path / "g" / "vae").glob("*.safetensors"))
    assert len((tmp_path / "g" / "logs" / "autoencoder_loss.csv").read_text(encoding="utf-8").split()) == 3  # header + 2 steps


def test_unknown_preset_and_bad_resolution_are_one_line(synthetic_index, tmp_path, capsys):
    assert main(["train", "autoencoder", "--index", str(synthetic_index), "--out", str(tmp_path / "g"),
                 "--preset", "huge"]) == 1
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert main(["train", "autoencoder", "--index", str(synthetic_index), "--out", str(tmp_path / "g"),
                 "--resolution", "40"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrgen-nnunet: error: resolution 40 is not divisible by 16") and err.count("\n") == 1
    assert not (tmp_path / "g" / "vae").exists()


def test_empty_index_and_missing_stage_one(tmp_path, synthetic_index, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["train", "text", "--index", str(empty), "--out", str(tmp_path / "g")]) == 1
    assert "index is empty" in capsys.readouterr().err
    assert main(["train", "text", "--index", str(synthetic_index), "--out", str(tmp_path / "g2"),
                 "--resolution", "32"]) == 1
    assert "AutoencoderKL config.json not found" in capsys.readouterr().err
