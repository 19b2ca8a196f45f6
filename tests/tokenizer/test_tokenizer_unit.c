#include <criterion/criterion.h>
Test(unit, placeholder) { cr_assert(1); }
