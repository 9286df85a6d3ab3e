-- keys are STRING or INT64
CREATE ENTITY location KEY (lat DOUBLE);
