/* tallow/tallow.h — everything public in one include. */
#ifndef TALLOW_TALLOW_H
#define TALLOW_TALLOW_H
#include "common.h"
#include "error.h"
#include "ctx.h"
#include "loop.h"
#include "msg.h"
#include "messages.h"
#include "plugin.h"
#include "policy.h"
#include "transport.h"
#include "nat.h"
#include "gather.h"
#include "punch.h"
#include "service.h"
#endif
