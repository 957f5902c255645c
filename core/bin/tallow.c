/* core/bin/tallow.c — placeholder runner (replaced by the Lua runner). */
#include <stdio.h>
int main(void)
{
    puts("tallow 0.1.0");
    return 0;
}
