/* placeholder: being written */
#include "msg.h"
