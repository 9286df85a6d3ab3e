-- standalone project split across files; file order is the reverse of dependencies
CREATE MODEL shop_model USING shop_samples;
