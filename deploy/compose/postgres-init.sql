-- Temporal's databases beside Moorage's, owned by the same role (auto-setup creates the
-- schemas in them on first start).
CREATE DATABASE temporal OWNER moorage;
CREATE DATABASE temporal_visibility OWNER moorage;
