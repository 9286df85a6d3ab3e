-- a model names its spec with USING
CREATE MODEL m ctr_spec;
