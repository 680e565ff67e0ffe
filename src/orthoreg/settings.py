"""The one settings file. Everything that differs between machines comes from ORTHOREG_* variables.

ORTHOREG_DATA_DIR       where the SQLite database, uploads, outgoing demo mail and the secret key live
                        (default ./orthoreg-data)
ORTHOREG_DATABASE_URL   sqlite:///path or postgresql://user:pass@host:port/name (default: SQLite in the data dir)
ORTHOREG_SECRET_KEY     generated once and kept in the data directory when unset
ORTHOREG_DEBUG          1/true to turn on Django's debug mode (never in production)
ORTHOREG_ALLOWED_HOSTS  comma-separated host names (default: localhost,127.0.0.1)
ORTHOREG_EMAIL_URL      smtp://user:pass@host:port (smtps:// or ?tls=1 for TLS), file:///dir, console:, memory:
ORTHOREG_EMAIL_FROM     sender address of invitations
ORTHOREG_BASE_URL       public address of the site, used in emailed links (default: the address `orthoreg serve`
                        answers on, recorded in the data directory; see orthoreg/baseurl.py)
ORTHOREG_SECURE         1 when served behind TLS: secure cookies, HSTS, SSL redirect
ORTHOREG_BEHIND_PROXY   1 when one reverse proxy (nginx, caddy) forwards requests: believe its X-Forwarded-For
                        and X-Forwarded-Proto
ORTHOREG_TRUSTED_PROXY  the proxy's address as `orthoreg serve` sees it (default 127.0.0.1 when BEHIND_PROXY);
                        forwarding headers from any other peer are dropped. `*` trusts every peer (only when
                        nothing but the proxy can reach the port)
ORTHOREG_MAX_UPLOAD_MB  largest accepted upload (default 50)
ORTHOREG_IMAGING_MAX_PIXELS  largest image accepted, in pixels (default 60 million; refuses decompression bombs)
ORTHOREG_LOGIN_ADDRESS_LIMIT  failed sign-ins from one address, any user names, before a lock-out (default 20); also the
                              most refused API tokens from one address audited per cool-off time
ORTHOREG_REPLICA_URL    postgresql://... of a streaming replica of the PostgreSQL primary: reports, exports and the
                        API's reads run there (orthoreg/replica.py; ignored with a SQLite primary)
ORTHOREG_REPLICA_STICKY_SECONDS  after a browser's write (POST ...), how long its requests keep reading the primary
                        (default 10)
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_number(name: str, default: float | None, kind: type = int, minimum: float = 0) -> float | None:
    """A numeric ORTHOREG_ variable; a value that is not a number of that kind (or below `minimum`) stops start-up
    with a sentence naming the variable, not a traceback from int()."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = kind(value.replace("_", ""))
    except ValueError:
        number = None
    if number is None or number < minimum:
        what = "a whole number" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name}={value!r}: expected {what} of at least {minimum:g}")
    return number


DATA_DIR = Path(os.environ.get("ORTHOREG_DATA_DIR") or "orthoreg-data").resolve()


def _secret_key() -> str:
    """ORTHOREG_SECRET_KEY, else the key kept in the data directory, made once.

    Several processes may start at once on a fresh data directory (two workers, a server and a worker):
    the key is written to a private temporary file and linked into place, which either succeeds whole or
    finds another process's complete key, so every process ends up with the same key and none sees a
    half-written file.
    """
    key = os.environ.get("ORTHOREG_SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=DATA_DIR, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; its key is complete
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def database_from_url(url: str | None, data_dir: Path) -> dict:
    """Turn ORTHOREG_DATABASE_URL into a Django DATABASES entry."""
    if not url:
        url = f"sqlite:///{data_dir / 'orthoreg.sqlite3'}"
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        name = unquote(parsed.path)
        if name.startswith("//"):  # sqlite:////abs/path
            name = name[1:]
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or str(data_dir / "orthoreg.sqlite3"),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=20000;"
                ),
            },
            "TEST": {"NAME": None},
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "orthoreg",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ValueError(f"ORTHOREG_DATABASE_URL: unsupported scheme {parsed.scheme!r} (use sqlite:// or postgresql://)")


def email_from_url(url: str | None, data_dir: Path) -> dict:
    """Turn ORTHOREG_EMAIL_URL into Django email settings."""
    if not url:
        url = f"file://{data_dir / 'outbox'}"
    parsed = urlparse(url)
    scheme = parsed.scheme
    if scheme == "file":
        return {
            "EMAIL_BACKEND": "orthoreg.followup.mailfile.EmailBackend",
            "EMAIL_FILE_PATH": unquote(parsed.path) or str(data_dir / "outbox"),
        }
    if scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme in {"memory", "locmem"}:
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme in {"smtp", "smtps"}:
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parsed.hostname or "localhost",
            "EMAIL_PORT": parsed.port or (465 if scheme == "smtps" else 25),
            "EMAIL_HOST_USER": unquote(parsed.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
            "EMAIL_USE_SSL": scheme == "smtps",
            "EMAIL_USE_TLS": query.get("tls", "") in {"1", "true"},
            "EMAIL_TIMEOUT": int(query.get("timeout", "30")),
        }
    raise ValueError(f"ORTHOREG_EMAIL_URL: unsupported scheme {scheme!r} (use smtp://, smtps://, file://, console:)")


SECRET_KEY = _secret_key()
DEBUG = env_bool("ORTHOREG_DEBUG")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ORTHOREG_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
BASE_URL = os.environ.get("ORTHOREG_BASE_URL", "").strip().rstrip("/")  # "": follow the server (orthoreg.baseurl)
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("ORTHOREG_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "simple_history",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "ninja",  # its Swagger UI files, served as the site's own static files (/api/v1/docs)
    "orthoreg.accounts",
    "orthoreg.registry",
    "orthoreg.instruments",
    "orthoreg.followup",
    "orthoreg.imaging",
    "orthoreg.analytics",
    "orthoreg.reports",
    "orthoreg.interop",
    "orthoreg.api",
    "orthoreg.site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orthoreg.replica.ReplicaMiddleware",  # with a read replica: which reads of the request may go there
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "orthoreg.accounts.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "orthoreg.accounts.middleware.RejectNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "orthoreg.accounts.middleware.AccessMiddleware",  # the request's access object; logs its reads
    "orthoreg.accounts.middleware.TwoFactorMiddleware",
    "orthoreg.accounts.middleware.ClinicTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "orthoreg.urls"
WSGI_APPLICATION = "orthoreg.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "orthoreg.accounts.context_processors.access",
            ],
        },
    }
]

DATABASES = {"default": database_from_url(os.environ.get("ORTHOREG_DATABASE_URL"), DATA_DIR)}


def replica_from_url(url: str | None, primary: dict) -> dict | None:
    """ORTHOREG_REPLICA_URL as the `replica` DATABASES entry: only with a PostgreSQL primary (a SQLite file has no
    replica); in tests it mirrors the primary's test database (Django creates none on a read-only server)."""
    if not (url or "").strip() or primary["ENGINE"] != "django.db.backends.postgresql":
        return None
    replica = database_from_url(url.strip(), DATA_DIR)
    if replica["ENGINE"] != primary["ENGINE"]:
        raise ImproperlyConfigured("ORTHOREG_REPLICA_URL: a replica of a PostgreSQL primary is a postgresql:// URL")
    return {**replica, "TEST": {"MIRROR": "default"}}


_replica = replica_from_url(os.environ.get("ORTHOREG_REPLICA_URL"), DATABASES["default"])
if _replica is not None:
    DATABASES["replica"] = _replica
# Always installed; both do nothing without the `replica` alias (orthoreg/replica.py).
DATABASE_ROUTERS = ["orthoreg.replica.Router"]
REPLICA_STICKY_SECONDS = env_number("ORTHOREG_REPLICA_STICKY_SECONDS", 10, float, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The clinic's locale: the language code decides how dates are printed everywhere (orthoreg.formats).
LANGUAGE_CODE = os.environ.get("ORTHOREG_LANGUAGE", "en-us")
FORMAT_MODULE_PATH = ["orthoreg.formats"]
TIME_ZONE = os.environ.get("ORTHOREG_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("ORTHOREG_STATIC_ROOT") or None  # only for collectstatic behind a CDN/proxy
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # static files served by the app itself, no collectstatic needed
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = DATA_DIR / "media"  # never served publicly: files go through access-checked views
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
MAX_UPLOAD_MB = env_number("ORTHOREG_MAX_UPLOAD_MB", 50, minimum=1)
# The clinic's own standard error of measurement of joint space width (mm), from its repeat measurements.
JSW_SEM_MM = env_number("ORTHOREG_JSW_SEM_MM", None, float, minimum=0.01)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_MB * 1024 * 1024
IMAGING_MAX_PIXELS = env_number("ORTHOREG_IMAGING_MAX_PIXELS", 60_000_000, minimum=1)  # decompression-bomb limit
# The clinic's PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS): its base URL (e.g. http://pacs:8042/dicom-web),
# HTTP basic credentials if it asks for them, and how long to wait for it (seconds). No URL: no PACS features.
DICOMWEB_URL = os.environ.get("ORTHOREG_DICOMWEB_URL", "").strip()
DICOMWEB_USER = os.environ.get("ORTHOREG_DICOMWEB_USER", "")
DICOMWEB_PASSWORD = os.environ.get("ORTHOREG_DICOMWEB_PASSWORD", "")
DICOMWEB_TIMEOUT = env_number("ORTHOREG_DICOMWEB_TIMEOUT", 20, float, minimum=1)

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

globals().update(email_from_url(os.environ.get("ORTHOREG_EMAIL_URL"), DATA_DIR))
DEFAULT_FROM_EMAIL = os.environ.get("ORTHOREG_EMAIL_FROM", "orthoreg <no-reply@localhost>")

# Security: cookies, CSRF and headers. Behind TLS set ORTHOREG_SECURE=1.
SECURE = env_bool("ORTHOREG_SECURE")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 8 * 60 * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_HSTS_SECONDS = 31536000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
BEHIND_PROXY = env_bool("ORTHOREG_BEHIND_PROXY")  # one reverse proxy in front: trust its X-Forwarded-* headers
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None


def trusted_proxy(value: str | None, behind_proxy: bool) -> str | None:
    """ORTHOREG_TRUSTED_PROXY: the one peer whose forwarding headers waitress believes (waitress compares the
    peer's address with it), `*` for any peer, or None when there is no proxy."""
    if not behind_proxy:
        return None
    value = (value or "").strip() or "127.0.0.1"
    if value == "*":
        return value
    import ipaddress

    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"ORTHOREG_TRUSTED_PROXY: {value!r} is not an IP address (give the reverse proxy's "
                         "address as orthoreg sees it, e.g. 127.0.0.1, or *)") from None


TRUSTED_PROXY = trusted_proxy(os.environ.get("ORTHOREG_TRUSTED_PROXY"), BEHIND_PROXY)
# What `orthoreg serve` hands waitress. Without a trusted proxy waitress drops every X-Forwarded-* header, so
# Django would never see the request was https (endless redirect) nor the client's address. With it, waitress
# keeps only the proxy's own X-Forwarded-For entry and sets REMOTE_ADDR and the URL scheme from them.
WAITRESS_PROXY_OPTIONS = {
    "trusted_proxy": TRUSTED_PROXY,
    "trusted_proxy_count": 1,
    "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
    "clear_untrusted_proxy_headers": True,
} if TRUSTED_PROXY else {"clear_untrusted_proxy_headers": True}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

AXES_FAILURE_LIMIT = env_number("ORTHOREG_LOGIN_FAILURE_LIMIT", 5, minimum=1)
# Failed sign-ins from one address, across all user names, before that address is locked out for the cool-off
# time (password spraying); above the per-name limit so that a shared office address is not locked by one typo.
LOGIN_ADDRESS_LIMIT = env_number("ORTHOREG_LOGIN_ADDRESS_LIMIT", 20, minimum=1)
AXES_HANDLER = "orthoreg.accounts.throttle.AddressLimitedHandler"
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "accounts/locked.html"
# Lock-out keys on the same client address the audit records (behind the proxy: the address it forwarded).
AXES_CLIENT_IP_CALLABLE = "orthoreg.accounts.services.client_ip"

OTP_TOTP_ISSUER = "orthoreg"
# 2FA is always required for admins; ORTHOREG_REQUIRE_2FA=1 requires it for every staff user.
REQUIRE_2FA_FOR_ALL = env_bool("ORTHOREG_REQUIRE_2FA")

SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ORTHOREG_LOG_LEVEL", "WARNING")},
    "loggers": {"orthoreg": {"level": os.environ.get("ORTHOREG_LOG_LEVEL", "INFO")}},
}
