-- comments in every place
/* a block comment
   over two lines */
CREATE /* inline */ FEATURE GROUP commented -- trailing
    ON user /* entity */ FROM user_profile -- source
    TTL 7 /* unit next */ DAYS
AS SELECT /* first */ age, -- the age
          city /* the city */;
