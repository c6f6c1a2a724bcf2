"""mailer: a daemon that mails researchers a personal digest of new papers."""

__version__ = "0.1.0"
