"""A SoftHSM2 token for the tests (Debian's softhsm2, installed by
deploy/system-packages.sh): its own store in a temporary SOFTHSM2_CONF
directory, initialised with softhsm2-util as an operator would.

The module reads SOFTHSM2_CONF once per process, so a test session has one
token; it is set in this process's environment, which the signing workers and
the service processes the tests start inherit."""

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from services.signer.hsm import TokenConfig

__all__ = ["SOFTHSM_MODULES", "SoftHsm"]

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


class SoftHsm:
    def __init__(self, folder: Path, label: str = "paraaf-test") -> None:
        if shutil.which("softhsm2-util") is None:
            raise RuntimeError("softhsm2-util is missing: run deploy/system-packages.sh (it installs Debian's softhsm2)")
        module = next((m for m in SOFTHSM_MODULES if Path(m).is_file()), None)
        if module is None:
            raise RuntimeError(f"the SoftHSM2 PKCS#11 module is in none of {SOFTHSM_MODULES}")
        (folder / "tokens").mkdir(parents=True)
        self.conf = folder / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        self.config = TokenConfig(module=module, token_label=label, pin=secrets.token_hex(8))
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", secrets.token_hex(8),
             "--pin", self.config.pin],
            check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
        )

    def env(self) -> dict[str, str]:
        """The signer's settings for this token, as an operator sets them."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "PARAAF_PKCS11_MODULE": self.config.module,
            "PARAAF_PKCS11_TOKEN": self.config.token_label or "",
            "PARAAF_PKCS11_PIN": self.config.pin,
        }
