"""Notifier: the mails that tell people what to sign, sent apart from the flow so SMTP can never stall it."""
