#include "bucket.h"
#include "test.h"

TEST(bucket_starts_full_and_refills_up_to_its_burst)
{
    struct bucket b;
    bucket_init(&b, 10, 5, 100.0);
    CHECK(bucket_level(&b, 100.0) == 5);
    bucket_take(&b, 5);
    CHECK(bucket_level(&b, 100.0) == 0);
    CHECK(bucket_level(&b, 100.2) > 1.99 && bucket_level(&b, 100.2) < 2.01);
    CHECK(bucket_level(&b, 200.0) == 5); /* never above the burst */
}

TEST(bucket_debt_is_paid_by_waiting)
{
    struct bucket b;
    bucket_init(&b, 4, 2, 0.0);
    bucket_take(&b, 3); /* one more than it held: -1 */
    CHECK(bucket_level(&b, 0.0) == -1);
    double w = bucket_wait(&b, 1, 0.0); /* from -1 to 1 at 4/s: 0.5 s */
    CHECK(w > 0.499 && w < 0.501);
    CHECK(bucket_wait(&b, 1, 0.5) < 1e-9);
    CHECK(bucket_wait(&b, 100, 0.5) > 0.249); /* want is capped at the burst: 2 */
    CHECK(bucket_wait(&b, 100, 0.5) < 0.251);
}
