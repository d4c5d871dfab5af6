"""User models: rename, delete, export to and import from a single archive, safely."""

import json
import os
import stat
import zipfile

import pytest

from napari_atomdefect.core.models.registry import (
    ModelError,
    delete_model,
    export_model,
    import_model,
    list_models,
    on_models_changed,
    rename_model,
    resolve_model,
)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(d))
    return d


def test_export_import_rename_delete(user_dir, tmp_path):
    calls = []
    on_models_changed(lambda: calls.append(1))
    archive = export_model("mos2-default", tmp_path / "m.zip")
    with zipfile.ZipFile(archive) as zf:
        assert set(zf.namelist()) == {"card.json", "detector.safetensors", "noise.safetensors"}
    old_umask = os.umask(0o022)
    try:
        dst = import_model(archive, name="copy")
    finally:
        os.umask(old_umask)
    assert dst.parent == user_dir and resolve_model("copy").card["name"] == "copy"
    # the folder and its files as any the user makes (mkdtemp's 0700/0600 were left: a trial)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in dst.iterdir()} == {0o644}
    assert calls
    rename_model("copy", "renamed")
    assert [m.name for m in list_models() if not m.bundled] == ["renamed"]
    with pytest.raises(ModelError, match="bundled"):
        rename_model("renamed", "mos2-default")
    delete_model("renamed")
    assert [m.name for m in list_models() if not m.bundled] == []
    with pytest.raises(ModelError):
        delete_model("mos2-default")  # bundled models are not user models
    assert resolve_model("mos2-default").bundled


def test_import_rejects_bad_archives(user_dir, tmp_path):
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("card.json", json.dumps({"name": "evil"}))
        zf.writestr("payload.pkl", b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(ModelError, match="unexpected"):
        import_model(bad)
    fake = tmp_path / "fake.zip"
    card = resolve_model().card
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("card.json", json.dumps(card))
        zf.writestr("detector.safetensors", b"\x80\x04not a safetensors file")
        zf.writestr("noise.safetensors", b"junk")
    with pytest.raises(ModelError, match="valid model"):
        import_model(fake, name="fake")
    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with pytest.raises(ModelError, match="not a model archive"):
        import_model(tmp_path / "notzip.zip")
    assert not user_dir.exists() or not any(p.name == "fake" for p in user_dir.iterdir())
