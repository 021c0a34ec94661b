"""Packaging for mixup_lab: every setting lives in settings.ini (nbdev 2 layout); edit it there."""
import shlex
from configparser import ConfigParser
from pathlib import Path

import setuptools

here = Path(__file__).parent
config = ConfigParser(delimiters=["="])
config.read(here / "settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

required = ("version description keywords author author_email lib_name user branch license "
            "status min_python audience language").split()
missing = [k for k in required if k not in cfg]
if missing: raise ValueError(f"settings.ini lacks the settings {missing}")

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License"),
            "mit": ("MIT License", "OSI Approved :: MIT License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable",
            "6 - Mature", "7 - Inactive"]
py_versions = "3.9 3.10 3.11 3.12 3.13 3.14".split()
if cfg["min_python"] not in py_versions:
    raise ValueError(f"min_python={cfg['min_python']!r}; expected one of {py_versions}")
license_name, license_classifier = licenses.get(cfg["license"].lower(), (cfg["license"], None))

requirements = shlex.split(cfg.get("requirements", "")) + shlex.split(cfg.get("pip_requirements", ""))
dev_requirements = cfg.get("dev_requirements", "").split()  # specifiers carry no spaces

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    keywords=cfg["keywords"],
    author=cfg["author"],
    author_email=cfg["author_email"],
    license=license_name,
    classifiers=[f"Development Status :: {statuses[int(cfg['status']) - 1]}",
                 f"Intended Audience :: {cfg['audience'].title()}",
                 f"Natural Language :: {cfg['language'].title()}"]
    + [f"Programming Language :: Python :: {v}" for v in py_versions[py_versions.index(cfg["min_python"]):]]
    + ([f"License :: {license_classifier}"] if license_classifier else []),
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"]),
    include_package_data=True,
    install_requires=requirements,
    extras_require={"dev": dev_requirements},
    python_requires=">=" + cfg["min_python"],
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={"console_scripts": cfg.get("console_scripts", "").split(),
                  "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
