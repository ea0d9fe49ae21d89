"""Operations: metrics, health checks, logging."""
