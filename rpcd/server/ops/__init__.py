"""Operations: logging, metrics, reload, systemd notify, the serve loop, core dumps."""
