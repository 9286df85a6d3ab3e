-- the spec must exist
CREATE MODEL m USING ctr_v2;
